/**
 * The fair queue across independent clients on real redis-server nodes
 * (docs/safety.md §9, "Fair waiting"): waiters of different processes are served
 * in the order they began waiting; a waiter that dies or freezes at the head
 * of the queue costs the next one a bounded delay; queues that disagree
 * across nodes (entries of waiters nobody runs, different orders, different
 * tickets) still let every live waiter through, one at a time.
 */
import { existsSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Lock, Redlock, type RedlockOptions } from '../../src/index.js';
import {
  MAX_TURN_GRACE_MS,
  MIN_TURN_GRACE_MS,
  QUEUE_LEASE_MS,
  QUEUE_REFRESH_MS,
} from '../../src/redis/redlock.js';
import { Child, hrNow, killAll } from '../fixtures/child.mjs';
import { connected, nodeClients } from '../harness/connected.js';
import { copyDist } from '../harness/dist-copy.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

const queueKey = (r: string) => `quorumlock:{${r}}:queue`;
const leaseKey = (r: string) => `quorumlock:{${r}}:lease`;
const lockKey = (r: string) => `quorumlock:{${r}}`;

let ensemble: Ensemble;
let direct: Redis[] = [];
const redlocks: Redlock[] = [];
const children: Child[] = [];

/** A Redlock connected to every node: no round of it misses a node that is still connecting. */
async function redlockOf(options: RedlockOptions): Promise<Redlock> {
  const r = new Redlock(ensemble.urls, options);
  redlocks.push(r);
  return connected(r);
}

/** Takes `resource` for `ttl` ms and waits until its key is set on every node. */
async function holdEverywhere(holder: Redlock, resource: string, ttl: number): Promise<Lock> {
  const before = await nodeStates(resource);
  const lock = await holder.acquire(resource, { ttl });
  try {
    await vi.waitFor(
      async () => {
        const values = await Promise.all(direct.map((c) => c.get(lockKey(resource))));
        expect(values).toEqual(direct.map(() => lock.value));
      },
      { timeout: 3_000, interval: 5 },
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\nbefore: ${JSON.stringify(before)}\nround: ${JSON.stringify(lock.nodes)}\nnow: ${JSON.stringify(await nodeStates(resource))}`,
    );
  }
  return lock;
}

/** The workers load a private copy of dist/ (see harness/dist-copy.ts), taken once. */
let dist: string;

function waiterProcess(resource: string, options: RedlockOptions): Child {
  const child = new Child('./queue-waiter.mjs', { urls: ensemble.urls, resource, options, dist });
  children.push(child);
  return child;
}

beforeAll(async () => {
  if (!existsSync(new URL('../../dist/index.js', import.meta.url))) {
    throw new Error('the queue-waiter workers import dist/: run `npm run build` first');
  }
  dist = await copyDist('fair-queue');
  ensemble = await startEnsemble({ size: 3 });
  direct = nodeClients(ensemble);
});
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGCONT');
  await killAll();
  await Promise.all(redlocks.splice(0).map((r) => r.close()));
  await Promise.all(direct.map((c) => c.flushall()));
});
afterAll(async () => {
  for (const c of direct) c.disconnect();
  await ensemble?.stop();
  if (dist) rmSync(dist, { recursive: true, force: true });
});

/** Queue entries of `resource`, node by node. */
function queueSizes(resource: string): Promise<number[]> {
  return Promise.all(direct.map((c) => c.zcard(queueKey(resource))));
}

/** What every node holds for `resource`: lock value and ttl, queue (member, ticket). */
async function nodeStates(resource: string): Promise<unknown[]> {
  return Promise.all(
    direct.map(async (c) => ({
      lock: await c.get(lockKey(resource)),
      pttl: await c.pttl(lockKey(resource)),
      queue: await c.zrange(queueKey(resource), '0', '-1', 'WITHSCORES'),
    })),
  );
}

/** Waits until `count` waiters are queued for `resource` on every node. */
async function queuedEverywhere(resource: string, count: number): Promise<void> {
  try {
    await vi.waitFor(
      async () => expect(await queueSizes(resource)).toEqual(direct.map(() => count)),
      { timeout: 3_000, interval: 5 },
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\nnodes: ${JSON.stringify(await nodeStates(resource))}`,
    );
  }
}

/** One critical section, on the machine-wide monotonic clock. */
interface Section {
  readonly who: string;
  readonly fence: number;
  readonly start: number;
  readonly end: number;
}

function expectNoOverlap(sections: readonly Section[]): void {
  const byStart = [...sections].sort((a, b) => a.start - b.start);
  for (let i = 1; i < byStart.length; i++) {
    expect(
      byStart[i]!.start,
      `${byStart[i]!.who} entered before ${byStart[i - 1]!.who} left`,
    ).toBeGreaterThanOrEqual(byStart[i - 1]!.end);
    // The later holder has the larger token.
    expect(byStart[i]!.fence).toBeGreaterThan(byStart[i - 1]!.fence);
  }
}

/** The section a worker reported for acquire `id`. */
async function sectionOf(
  child: Child,
  who: string,
  id: number,
  timeoutMs = 20_000,
): Promise<Section> {
  const got = await child.waitFor((e) => e.event === 'acquired' && e.id === id, { timeoutMs });
  const left = await child.waitFor((e) => e.event === 'releasing' && e.id === id, { timeoutMs });
  return { who, fence: got.fence as number, start: got.t, end: left.t };
}

// Generous per-call deadline where timing is not what a test measures: on a
// loaded 2-core machine a short one is missed and fails rounds.
const RELAXED: RedlockOptions = { nodeTimeout: 1_000 };

describe('FIFO across independent clients', () => {
  it('serves waiters of separate processes in the order they began waiting, in every trial', async () => {
    const resource = 'fifo';
    const TRIALS = 5;
    const HOLD = 20;
    // Four waiters in their own processes, one in this process on its own instance.
    const workers = Array.from({ length: 4 }, () => waiterProcess(resource, RELAXED));
    await Promise.all(
      workers.map((w) => w.waitFor((e) => e.event === 'ready', { timeoutMs: 30_000 })),
    );
    const local = await redlockOf(RELAXED);
    const holder = await redlockOf(RELAXED);
    const names = ['p0', 'p1', 'p2', 'p3', 'local'];
    let id = 0;
    const served: string[][] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const held = await holdEverywhere(holder, resource, 10_000);
      // A new arrival order every trial, so no one process is simply the fastest.
      const order = [...names].sort(() => Math.random() - 0.5);
      const sections: Array<Promise<Section>> = [];
      for (const [k, name] of order.entries()) {
        const n = id++;
        if (name === 'local') {
          sections.push(
            local.acquire(resource, { ttl: 5_000 }).then(async (lock: Lock) => {
              const start = hrNow();
              await sleep(HOLD);
              const end = hrNow();
              await lock.release();
              return { who: name, fence: lock.fence!, start, end };
            }),
          );
        } else {
          const w = workers[Number(name.slice(1))]!;
          w.send({ cmd: 'acquire', id: n, ttl: 5_000, hold: HOLD });
          sections.push(sectionOf(w, name, n));
        }
        // Its entry is on every node before the next one begins to wait, 40 ms later.
        await queuedEverywhere(resource, k + 1);
        await sleep(40);
      }
      await held.release();
      const done = await Promise.all(sections);
      expectNoOverlap(done);
      const byFence = [...done].sort((a, b) => a.fence - b.fence).map((s) => s.who);
      served.push(byFence);
      expect(byFence, `trial ${trial}: began waiting ${order}, served ${byFence}`).toEqual(order);
    }
    console.log(
      `FIFO: ${TRIALS} of ${TRIALS} trials served in arrival order (${served.map((s) => s.join(',')).join(' | ')})`,
    );
    for (const w of workers) w.send({ cmd: 'close' });
    await Promise.all(workers.map((w) => w.waitFor((e) => e.event === 'closed')));
  }, 60_000);
});

/**
 * A short per-call deadline makes the hand-over grace short: grace = 2 ×
 * nodeTimeout within [MIN_TURN_GRACE_MS, MAX_TURN_GRACE_MS] = 250 ms. A lock
 * or turn handed to a waiter that cannot take it costs the next waiter that
 * grace, plus one acquire round (≤ nodeTimeout) to take it, plus scheduling
 * slack on a loaded 2-core machine (500 ms).
 */
const FAST: RedlockOptions = { nodeTimeout: 100 };
const GRACE_MS = Math.min(MAX_TURN_GRACE_MS, Math.max(MIN_TURN_GRACE_MS, 2 * FAST.nodeTimeout!));
const DEAD_HEAD_BOUND_MS = GRACE_MS + FAST.nodeTimeout! + 500;

describe('a waiter at the head of the queue that cannot take its turn', () => {
  /**
   * Holder in this process; waiter A (to be killed or paused) queued first,
   * waiter B second, both in their own processes. Returns B's delay: from the
   * holder's release to B's acquire.
   */
  async function deadHead(
    resource: string,
    fault: 'SIGKILL' | 'SIGSTOP',
  ): Promise<{ delay: number; a: Child; b: Child; b0: Section; trace: string }> {
    const [a, b] = [waiterProcess(resource, FAST), waiterProcess(resource, FAST)];
    await Promise.all(
      [a, b].map((w) => w.waitFor((e) => e.event === 'ready', { timeoutMs: 30_000 })),
    );
    const holder = await redlockOf(FAST);
    const held = await holdEverywhere(holder, resource, 10_000);
    a.send({ cmd: 'acquire', id: 0, ttl: 5_000 });
    await queuedEverywhere(resource, 1).catch((err) => {
      throw new Error(`${err.message}\nA: ${JSON.stringify(a.events)} ${a.stderr}`);
    });
    await sleep(40);
    b.send({ cmd: 'acquire', id: 0, ttl: 5_000, hold: 10 });
    await queuedEverywhere(resource, 2);
    if (fault === 'SIGKILL') {
      a.kill('SIGKILL');
      await a.exited;
    } else {
      a.kill('SIGSTOP');
    }
    // Worst case for B: release just after B refreshed its entry on its timer
    // (its third lost round: the first queues it, the second follows at once
    // when it starts listening for turns), so its next look is as far away as
    // it gets (QUEUE_REFRESH_MS) unless something tells it the turn lapsed.
    await b.waitFor((e) => e.event === 'round' && e.id === 0 && (e.n as number) >= 3, {
      timeoutMs: 5_000,
    });
    const releasedAt = hrNow();
    await held.release();
    const b0 = await sectionOf(b, 'b', 0, 10_000);
    // What B did, in ms from the release, for a failure message.
    const trace = b.events
      .filter((e) => e.id === 0)
      .map(
        (e) =>
          `${e.event}${e.n ?? ''}@${(e.t - releasedAt).toFixed(0)}${e.nodes ? `[${(e.nodes as string[]).join(',')}]` : ''}`,
      )
      .join(' ');
    return { delay: b0.start - releasedAt, a, b, b0, trace };
  }

  it(`costs the next waiter at most one turn grace when killed (SIGKILL): bound ${DEAD_HEAD_BOUND_MS} ms`, async () => {
    const { delay, trace } = await deadHead('killed', 'SIGKILL');
    console.log(
      `killed head: next waiter served ${delay.toFixed(0)} ms after the release (bound ${DEAD_HEAD_BOUND_MS} ms = grace ${GRACE_MS} + round ${FAST.nodeTimeout} + slack 500; refresh ${QUEUE_REFRESH_MS} ms, lease ${QUEUE_LEASE_MS} ms)`,
    );
    expect(delay, `next waiter: ${trace}`).toBeLessThan(DEAD_HEAD_BOUND_MS);
  });

  it(`costs the next waiter at most one turn grace when paused (SIGSTOP), and serves it after SIGCONT`, async () => {
    const resource = 'paused';
    const { delay, a, b0, trace } = await deadHead(resource, 'SIGSTOP');
    console.log(
      `paused head: next waiter served ${delay.toFixed(0)} ms after the release (bound ${DEAD_HEAD_BOUND_MS} ms)`,
    );
    // Soft: what happens after SIGCONT is checked either way.
    expect.soft(delay, `next waiter: ${trace}`).toBeLessThan(DEAD_HEAD_BOUND_MS);
    a.kill('SIGCONT');
    // It missed its turn; it queues again and still gets the lock, after B.
    const a0 = await sectionOf(a, 'a', 0, 15_000);
    expect(a0.fence).toBeGreaterThan(b0.fence);
    expect(a0.start).toBeGreaterThanOrEqual(b0.end);
  });
});

describe('queues that disagree across nodes', () => {
  it('still serve every live waiter, one at a time, within the lease of the stale entries', async () => {
    const resource = 'divergent';
    const WAITERS = 4;
    const instances = await Promise.all(Array.from({ length: WAITERS }, () => redlockOf(FAST)));
    const holder = await redlockOf(FAST);
    const held = await holdEverywhere(holder, resource, 10_000);
    // Entries of waiters nobody runs, in a different order on each node, with
    // tickets far apart, leased for the longest a real waiter's entry lives.
    const planted: Array<Array<[number, string]>> = [
      [
        [1, 'ghostA.0'],
        [2, 'ghostB.0'],
        [3, 'ghostC.0'],
      ],
      [
        [1, 'ghostC.0'],
        [5, 'ghostA.0'],
        [90, 'ghostD.7'],
      ],
      [[40, 'ghostB.0']],
    ];
    await Promise.all(
      direct.map(async (c, i) => {
        const [sec, usec] = await c.time();
        const until = Number(sec) * 1000 + Math.floor(Number(usec) / 1000) + QUEUE_LEASE_MS;
        for (const [ticket, member] of planted[i]!) {
          await c.zadd(queueKey(resource), ticket, member);
          await c.zadd(leaseKey(resource), until, member);
        }
        await c.pexpire(queueKey(resource), QUEUE_LEASE_MS);
        await c.pexpire(leaseKey(resource), QUEUE_LEASE_MS);
      }),
    );
    const plantedAt = hrNow();
    const sections: Section[] = [];
    let inside = 0;
    let overlaps = 0;
    const waiters = instances.map(async (r, i) => {
      await sleep(i * 20);
      const lock = await r.acquire(resource, { ttl: 5_000, wait: 20_000 });
      inside++;
      if (inside > 1) overlaps++;
      const start = hrNow();
      await sleep(10);
      const end = hrNow();
      inside--;
      sections.push({ who: `w${i}`, fence: lock.fence!, start, end });
      await lock.release();
    });
    await sleep(150);
    await held.release();
    await Promise.all(waiters);
    const last = Math.max(...sections.map((s) => s.end)) - plantedAt;
    // The stale entries are gone once their lease ends (each one that reaches
    // the head before that costs one turn grace, and the waiter next in line is
    // told when it runs out); after that each handoff is a release and a claim.
    // Slack: 4 handoffs and a loaded 2-core machine.
    const bound = QUEUE_LEASE_MS + 1_000;
    console.log(
      `divergent queues: ${WAITERS} waiters all served ${last.toFixed(0)} ms after the stale entries were planted (bound ${bound} ms)`,
    );
    expect(overlaps).toBe(0);
    expect(sections).toHaveLength(WAITERS);
    expectNoOverlap(sections);
    expect(last).toBeLessThan(bound);
    // Nothing of theirs, nor of the ghosts, stays behind once they are done.
    await vi.waitFor(
      async () => {
        const values = await Promise.all(direct.map((c) => c.get(lockKey(resource))));
        expect(values).toEqual([null, null, null]);
      },
      { timeout: 2_000, interval: 20 },
    );
  });
});

describe('a node that stops answering', () => {
  it('does not keep waiters from the lock handed to them: each takes it from the quorum that answered', async () => {
    const resource = 'silent-node';
    const WAITERS = 3;
    const HOLD_TTL = 1_000;
    // A node timeout of half the turn grace or more: waiting for the silent node's
    // deadline before taking a handed-over lock would let the hand-over expire.
    const options: RedlockOptions = {
      nodeTimeout: MAX_TURN_GRACE_MS,
      retry: { minDelay: 5, maxDelay: 50 },
    };
    const instances = await Promise.all(Array.from({ length: WAITERS }, () => redlockOf(options)));
    const holder = await redlockOf(options);
    // Abandoned: it expires, and the waiters' own rounds find the key free and
    // hand it to the first of them.
    await holdEverywhere(holder, resource, HOLD_TTL);
    const expiresAt = hrNow() + HOLD_TTL;
    const sections: Section[] = [];
    ensemble.nodes[2]!.pause();
    try {
      await Promise.all(
        instances.map(async (r, i) => {
          await sleep(i * 20);
          const lock = await r.acquire(resource, { ttl: 5_000, wait: 15_000 });
          const start = hrNow();
          await sleep(10);
          sections.push({ who: `w${i}`, fence: lock.fence!, start, end: hrNow() });
          await lock.release();
        }),
      );
      const last = Math.max(...sections.map((s) => s.end)) - expiresAt;
      // Three hand-overs, each a claim round or a release and a notice; slack for a
      // loaded machine.
      const bound = MAX_TURN_GRACE_MS + 1_500;
      console.log(
        `silent node: ${WAITERS} waiters served ${last.toFixed(0)} ms after the holder's lock expired (bound ${bound} ms)`,
      );
      expect(sections).toHaveLength(WAITERS);
      expectNoOverlap(sections);
      expect(last).toBeLessThan(bound);
    } finally {
      ensemble.nodes[2]!.resume();
    }
  });
});
