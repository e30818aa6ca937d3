import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  type Leader,
  type Lock,
  LockLostError,
  QuorumError,
  Redlock,
} from '../../src/index.js';
import { Child, hrNow, killAll, type WorkerEvent } from '../fixtures/child.mjs';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
const redlocks: Redlock[] = [];
function redlockOf(options: ConstructorParameters<typeof Redlock>[1] = {}): Redlock {
  const r = new Redlock(ensemble.urls, options);
  redlocks.push(r);
  return r;
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  ensemble = await startEnsemble({ size: 3 });
});
afterEach(async () => {
  await killAll();
  for (const node of ensemble.nodes) node.resume();
  await Promise.all(redlocks.splice(0).map((r) => r.close()));
  expect(unhandled).toEqual([]);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await ensemble?.stop();
});

/** Resolves when `predicate` holds, checking every few ms; rejects after `timeoutMs`. */
async function until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

async function deleteEverywhere(key: string): Promise<void> {
  for (const node of ensemble.nodes) {
    const c = node.client();
    try {
      await c.del(key);
    } finally {
      c.disconnect();
    }
  }
}

/** A routine that records its term and returns `cleanupMs` after its signal aborts. */
function routineLog(cleanupMs = 0) {
  const terms: Array<{ lock: Lock; reason?: unknown; endedAt?: number }> = [];
  const routine = async (signal: AbortSignal, lock: Lock) => {
    const term: (typeof terms)[number] = { lock };
    terms.push(term);
    if (!signal.aborted) {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    }
    term.reason = signal.reason;
    await sleep(cleanupMs);
    term.endedAt = performance.now();
  };
  return { terms, routine };
}

describe('leader election across processes', () => {
  it('has one leader at a time, replaces a killed leader within about one ttl, and hands over at once on stop()', async () => {
    if (!existsSync(new URL('../../dist/index.js', import.meta.url))) {
      throw new Error('the leader workers import dist/: run `npm run build` first');
    }
    const ttl = 3_000;
    const names = ['a', 'b', 'c'];
    const workers = new Map(
      names.map((name) => [
        name,
        new Child('./leader-worker.mjs', {
          urls: ensemble.urls,
          resource: 'leader',
          ttl,
          name,
          cleanupMs: 50,
        }),
      ]),
    );
    await Promise.all(
      [...workers.values()].map((w) =>
        w.waitFor((e) => e.event === 'ready', { timeoutMs: 30_000 }),
      ),
    );
    const all = () =>
      [...workers.values()].flatMap((w) => w.events).sort((x, y) => x.t - y.t) as WorkerEvent[];
    const elections = () => all().filter((e) => e.event === 'elected');
    const nextElected = async (count: number) => {
      await until(() => elections().length >= count, 15_000);
      return elections()[count - 1]!;
    };

    // 1. One candidate wins, and keeps it through many renewals.
    const first = await nextElected(1);
    await sleep(2 * ttl);
    expect(elections()).toHaveLength(1);

    // 2. stop() resigns: the routine winds down, the lock is released, and a
    //    waiting candidate is elected at once (push), long before the ttl.
    const firstWorker = workers.get(first.name as string)!;
    firstWorker.send({ cmd: 'stop' });
    const ended = await firstWorker.waitFor((e) => e.event === 'routine-end');
    const second = await nextElected(2);
    expect(second.name).not.toBe(first.name);
    expect(second.t).toBeGreaterThanOrEqual(ended.t);
    const handover = second.t - ended.t;
    expect(handover).toBeLessThan(ttl / 3);
    const stopped = await firstWorker.waitFor((e) => e.event === 'stopped');
    expect(stopped.isLeader).toBe(false);
    // The resigned worker exits on its own once closed.
    expect((await firstWorker.exited).code).toBe(0);

    // 3. SIGKILL the leader: it never releases, and the survivor is elected
    //    once the key expires on a quorum, about one ttl later.
    await sleep(ttl / 2);
    const observer = redlockOf();
    const inspectedAt = hrNow();
    const state = await observer.inspect('leader');
    const secondWorker = workers.get(second.name as string)!;
    const killedAt = hrNow();
    secondWorker.kill('SIGKILL');
    const third = await nextElected(3);
    expect(third.name).not.toBe(second.name);
    const takeover = third.t - killedAt;
    expect(takeover).toBeLessThan(ttl + 1_000);
    // Not before the killed leader's key had expired on a quorum of nodes.
    const pttls = state.nodes
      .filter((n) => n.value === state.holder)
      .map((n) => n.pttl!)
      .sort((x, y) => x - y);
    expect(pttls.length).toBeGreaterThanOrEqual(2);
    const quorumExpiry = inspectedAt + pttls[pttls.length - state.quorum]!;
    expect(third.t).toBeGreaterThanOrEqual(quorumExpiry - 1);

    // 4. The last leader stops; nobody is left to take over.
    const thirdWorker = workers.get(third.name as string)!;
    thirdWorker.send({ cmd: 'stop' });
    expect((await thirdWorker.exited).code).toBe(0);
    expect(elections()).toHaveLength(3);

    // Terms never overlap: each ends (lost, or killed) before the next begins.
    const terms = elections().map((e) => {
      const end =
        e.name === second.name
          ? killedAt
          : all().find((x) => x.event === 'lost' && x.name === e.name && x.term === e.term)?.t;
      return { name: e.name, start: e.t, end: end!, fence: e.fence as number };
    });
    for (const [i, term] of terms.entries()) {
      expect(term.end).toBeGreaterThan(term.start);
      if (i > 0) {
        expect(term.start).toBeGreaterThanOrEqual(terms[i - 1]!.end);
        expect(term.fence).toBeGreaterThan(terms[i - 1]!.fence);
      }
    }
    console.log(
      `leader election (ttl ${ttl} ms): stop() handover ${handover.toFixed(1)} ms after the routine ended; ` +
        `new leader ${takeover.toFixed(1)} ms after SIGKILL`,
    );
  }, 90_000);
});

describe('Leader', () => {
  it('runs the routine while elected and stop() waits for it, then releases', async () => {
    // Node calls give up after ttl/5, so renewal retries in time on a loaded machine.
    const redlock = redlockOf({ nodeTimeout: 200 });
    const { terms, routine } = routineLog(100);
    const elected: Lock[] = [];
    const lost: LockLostError[] = [];
    const leader = redlock.leader(
      'solo',
      { ttl: 1_000, onElected: (lock) => elected.push(lock), onLost: (r) => lost.push(r) },
      routine,
    );
    expect(leader.isLeader).toBe(false);
    await until(() => leader.isLeader);
    expect(leader.lock).toBe(elected[0]);
    expect(terms).toHaveLength(1);
    // Renewed: still leader after several ttls.
    await sleep(2_500);
    expect(leader.isLeader).toBe(true);
    expect(terms[0]!.reason).toBeUndefined();

    await leader.stop();
    // The routine had returned before stop() resolved, and the lock is gone.
    expect(terms[0]!.endedAt).toBeDefined();
    expect(terms[0]!.reason).toBeInstanceOf(LockLostError);
    expect(leader.isLeader).toBe(false);
    expect(leader.lock).toBeUndefined();
    expect(lost).toHaveLength(1);
    expect(lost[0]).toBe(terms[0]!.reason);
    expect(elected[0]!.held).toBe(false);
    expect(await ensemble.keys('quorumlock:{solo}')).toEqual([]);
    await expect(leader.done).resolves.toBeUndefined();
    // stop() is idempotent.
    await expect(leader.stop()).resolves.toBeUndefined();
  });

  it('campaigns again after its lock is taken away', async () => {
    const redlock = redlockOf();
    const { terms, routine } = routineLog();
    const leader = redlock.leader('taken', { ttl: 300 }, routine);
    await until(() => leader.isLeader);
    const lock = leader.lock!;
    // The key disappears behind the leader's back: its next renewal finds it gone.
    await deleteEverywhere('quorumlock:{taken}');
    await until(() => !lock.held);
    await until(() => leader.isLeader && leader.lock !== lock);
    const before = terms.find((t) => t.lock === lock)!;
    const after = terms.find((t) => t.lock === leader.lock)!;
    expect(before.reason).toBeInstanceOf(LockLostError);
    expect(after.reason).toBeUndefined();
    expect(after.lock.fence).toBeGreaterThan(before.lock.fence!);
    await leader.stop();
  });

  it('has one of two candidates lead at a time through outages of a majority', async () => {
    const [r1, r2] = [redlockOf(), redlockOf()];
    const logs = [routineLog(), routineLog()];
    const leaders: Leader[] = [
      r1.leader('shared', { ttl: 400 }, logs[0]!.routine),
      r2.leader('shared', { ttl: 400 }, logs[1]!.routine),
    ];
    let overlap = false;
    const sampler = setInterval(() => {
      if (leaders.every((l) => l.isLeader)) overlap = true;
    }, 1);
    const fences: number[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        await until(() => leaders.some((l) => l.isLeader));
        const lock = leaders.find((l) => l.isLeader)!.lock!;
        fences.push(lock.fence!);
        // Renewal cannot reach a majority: the leader steps down before its
        // validity ends, and nobody can be elected until the nodes are back.
        ensemble.nodes[0]!.pause();
        ensemble.nodes[1]!.pause();
        await until(() => !lock.held);
        expect(leaders.some((l) => l.isLeader)).toBe(false);
        ensemble.nodes[0]!.resume();
        ensemble.nodes[1]!.resume();
      }
      await until(() => leaders.some((l) => l.isLeader));
      fences.push(leaders.find((l) => l.isLeader)!.lock!.fence!);
    } finally {
      clearInterval(sampler);
      for (const node of ensemble.nodes) node.resume();
      await Promise.all(leaders.map((l) => l.stop()));
    }
    expect(overlap).toBe(false);
    for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1]!);
    // Every ended term saw its signal abort with a LockLostError.
    const ended = logs.flatMap((l) => l.terms);
    expect(ended.length).toBeGreaterThanOrEqual(4);
    for (const t of ended) expect(t.reason).toBeInstanceOf(LockLostError);
  });

  it('resigns when the routine throws, reports the error, and campaigns again', async () => {
    const redlock = redlockOf();
    const errors: unknown[] = [];
    const boom = new Error('job failed');
    let runs = 0;
    const fences: number[] = [];
    const leader = redlock.leader(
      'flaky',
      { ttl: 2_000, onError: (err) => errors.push(err) },
      async (_signal, lock) => {
        fences.push(lock.fence!);
        runs++;
        if (runs === 1) throw boom;
      },
    );
    await until(() => runs === 2 && leader.isLeader);
    expect(errors).toEqual([boom]);
    expect(fences[1]).toBeGreaterThan(fences[0]!);
    // A routine that returned keeps the leadership until stop().
    await sleep(200);
    expect(runs).toBe(2);
    expect(leader.isLeader).toBe(true);
    await leader.stop();
    expect(await ensemble.keys('quorumlock:{flaky}')).toEqual([]);
  });

  it('keeps campaigning while a majority is down and is elected once it is back', async () => {
    const redlock = redlockOf();
    const errors: unknown[] = [];
    ensemble.nodes[0]!.pause();
    ensemble.nodes[1]!.pause();
    const leader = redlock.leader(
      'outage',
      { ttl: 1_000, onError: (err) => errors.push(err) },
      async () => {},
    );
    await until(() => errors.length >= 2);
    expect(leader.isLeader).toBe(false);
    expect(errors[0]).toBeInstanceOf(QuorumError);
    ensemble.nodes[0]!.resume();
    ensemble.nodes[1]!.resume();
    await until(() => leader.isLeader);
    await leader.stop();
  });

  it('stops campaigning when its Redlock closes', async () => {
    const redlock = new Redlock(ensemble.urls);
    const lost: LockLostError[] = [];
    const a = redlock.leader('closing', { ttl: 1_000, onLost: (r) => lost.push(r) }, () => {});
    const b = redlock.leader('closing', { ttl: 1_000, onLost: (r) => lost.push(r) }, () => {});
    await until(() => a.isLeader || b.isLeader);
    await redlock.close();
    await Promise.all([a.done, b.done]);
    expect(a.isLeader || b.isLeader).toBe(false);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toBeInstanceOf(LockLostError);
  });

  it('rejects bad input before touching any node', async () => {
    const redlock = redlockOf();
    const fn = () => {};
    expect(() => redlock.leader('', fn)).toThrow(InvalidArgumentError);
    expect(() => redlock.leader('x', { ttl: -1 }, fn)).toThrow(InvalidArgumentError);
    expect(() => redlock.leader('x', { bogus: 1 } as never, fn)).toThrow(InvalidArgumentError);
    expect(() => redlock.leader('x', { onLost: 'no' } as never, fn)).toThrow(InvalidArgumentError);
    expect(() => redlock.leader('x', {}, undefined as never)).toThrow(InvalidArgumentError);
    expect(await ensemble.keys('quorumlock:{x}*')).toEqual([]);
  });
});
