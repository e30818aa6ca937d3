import diagnostics from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  channels,
  type Lock,
  LockLostError,
  QuorumError,
  Redlock,
  type RoundEvent,
} from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
const redlocks: Redlock[] = [];
function redlockOf(options: ConstructorParameters<typeof Redlock>[1] = {}): Redlock {
  // A generous per-call deadline: these tests are not about slow nodes, and on a
  // loaded machine the default (learned from round trips, at least 50 ms) can be missed.
  const r = new Redlock(ensemble.urls, { nodeTimeout: 500, ...options });
  redlocks.push(r);
  return r;
}

/** Unhandled rejections anywhere in this file fail it: renewal must never produce one. */
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  ensemble = await startEnsemble({ size: 3 });
});
afterEach(async () => {
  for (const node of ensemble.nodes) node.resume();
  await Promise.all(redlocks.splice(0).map((r) => r.close()));
  expect(unhandled).toEqual([]);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await ensemble?.stop();
});

/** Collects the events of one diagnostics channel for `resource` until `stop()`. */
function record(channel: string, resource: string) {
  const events: Array<RoundEvent & { at: number }> = [];
  const listener = (message: unknown) => {
    const event = message as RoundEvent;
    if (event.resources.includes(resource)) events.push({ ...event, at: performance.now() });
  };
  diagnostics.subscribe(channel, listener);
  return { events, stop: () => diagnostics.unsubscribe(channel, listener) };
}

/** Resolves once `signal` has aborted (at once if it already has). */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener('abort', () => resolve(), { once: true }),
  );
}

/**
 * Runs `hold` again when acquiring failed for lack of answers (a QuorumError
 * from the acquire round, before the routine ran): on a loaded machine a short
 * node deadline can be missed, and these tests are about holding, not acquiring.
 */
async function acquiringAgain<T>(hold: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await hold();
    } catch (err) {
      if (!(err instanceof QuorumError) || err.message.includes('extend') || attempt >= 5)
        throw err;
    }
  }
}

/** On how many nodes the lock key of `resource` holds `value`. */
async function holdingNodes(resource: string, value: string): Promise<number> {
  const keys = await ensemble.keys(`quorumlock:{${resource}}`);
  return keys.filter((k) => k.value === value).length;
}

describe('using', () => {
  it('keeps a lock for 10× its ttl while the routine runs', async () => {
    const ttl = 1_000;
    // Node calls give up after ttl/5, so a round stuck on a slow node fails in
    // time for renewal to try again while the lock is still valid.
    const redlock = redlockOf({ nodeTimeout: ttl / 5 });
    // The first round of an instance also connects and loads the scripts: not what this test times.
    await redlock.inspect('long');
    const extends_ = record(channels.extend, 'long');
    const acquires = record(channels.acquire, 'long');
    const seen: number[] = [];
    const pttls: number[] = [];
    try {
      const result = await acquiringAgain(() =>
        redlock.using('long', { ttl }, async (signal, lock) => {
          const until = performance.now() + 10 * ttl;
          while (performance.now() < until) {
            if (signal.aborted) {
              // Say which rounds were slow: the lock must survive anything short of a lost majority.
              const rounds = [...acquires.events, ...extends_.events].map(
                (e) => `${e.ok ? 'ok' : 'failed'} in ${e.durationMs.toFixed(0)} ms`,
              );
              throw new Error(
                `lock lost while held: ${signal.reason}; rounds: ${rounds.join(', ')}`,
              );
            }
            seen.push(await holdingNodes('long', lock.value));
            const probe = ensemble.nodes[0]!.client();
            try {
              pttls.push(await probe.pttl('quorumlock:{long}'));
            } finally {
              probe.disconnect();
            }
            await sleep(ttl / 5);
          }
          expect(signal.aborted).toBe(false);
          expect(lock.held).toBe(true);
          expect(lock.remaining()).toBeGreaterThan(0);
          return 'done';
        }),
      );
      expect(result).toBe('done');
    } finally {
      extends_.stop();
      acquires.stop();
    }
    // Every sample saw the key on a majority of the nodes.
    expect(seen.length).toBeGreaterThan(25);
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(2);
    // Renewed with the caller's ttl, not the instance default of 30 s.
    expect(Math.max(...pttls)).toBeLessThanOrEqual(ttl);
    expect(Math.min(...pttls)).toBeGreaterThan(0);
    // About every ttl/3, and never a failed round on healthy nodes.
    const ok = extends_.events.filter((e) => e.ok);
    expect(ok.length).toBeGreaterThanOrEqual(20);
    expect(extends_.events.filter((e) => !e.ok)).toEqual([]);
    // Released at the end.
    expect(await holdingNodes('long', 'anything')).toBe(0);
    expect(await ensemble.keys('quorumlock:{long}')).toEqual([]);
  });

  it('aborts the signal with LockLostError at or before the validity deadline when a majority is paused', async () => {
    const redlock = redlockOf();
    const ttl = 2_000;
    const drift = ttl * redlock.settings.driftFactor + redlock.settings.driftMs;
    const extends_ = record(channels.extend, 'paused');
    const lost = record(channels.lost, 'paused');
    try {
      const outcome = await redlock.using('paused', { ttl }, async (signal, lock) => {
        // Let a few renewals happen first.
        await sleep(ttl);
        expect(signal.aborted).toBe(false);
        // The lock's deadline D is never read directly: `t + remaining()` with t
        // read just before is a lower bound of it, with t read just after an
        // upper bound (the process can be preempted between two reads).
        const t0 = performance.now();
        const deadlineBeforeLow = t0 + lock.remaining();
        const aborted = new Promise<{
          before: number;
          remaining: number;
          after: number;
          reason: unknown;
        }>((resolve) => {
          signal.addEventListener(
            'abort',
            () => {
              const before = performance.now();
              const remaining = lock.remaining();
              resolve({ before, remaining, after: performance.now(), reason: signal.reason });
            },
            { once: true },
          );
        });
        ensemble.nodes[0]!.pause();
        ensemble.nodes[1]!.pause();
        // Read after the pause: every round started before the pause started before this.
        const pausedBy = performance.now();
        const abort = await aborted;
        for (const node of ensemble.nodes) node.resume();
        return { deadlineBeforeLow, pausedBy, abort };
      });
      const { deadlineBeforeLow, pausedBy, abort } = outcome;
      expect(abort.reason).toBeInstanceOf(LockLostError);
      expect((abort.reason as LockLostError).code).toBe('ERR_LOCK_LOST');
      // Aborted at or before the deadline the lock held at that moment, never after.
      expect(abort.remaining).toBeGreaterThanOrEqual(0);
      // That deadline never moved back ...
      const deadlineHigh = abort.after + abort.remaining;
      expect(deadlineHigh).toBeGreaterThanOrEqual(deadlineBeforeLow);
      // ... and it is no later than the last successful extend round allows:
      // that round's start + ttl − drift.
      // (An extend round in flight at the abort may still land afterwards: it no longer counts.)
      const lastOk = extends_.events.filter((e) => e.ok && e.at <= abort.before).at(-1)!;
      expect(lastOk).toBeDefined();
      // e.at − durationMs is read after the round's start: an upper bound of it.
      const lastStartHigh = lastOk.at - lastOk.durationMs;
      const deadlineLow = abort.before + abort.remaining;
      expect(deadlineLow).toBeLessThanOrEqual(lastStartHigh + ttl - drift + 0.01);
      console.log(
        `majority paused: signal aborted ${abort.remaining.toFixed(1)} ms before the validity deadline, ` +
          `${(abort.before - pausedBy).toFixed(0)} ms after the pause`,
      );
      // Rounds after the pause failed, and the loss was published.
      expect(extends_.events.some((e) => !e.ok && e.at > pausedBy)).toBe(true);
      expect(lost.events).toHaveLength(1);
    } finally {
      extends_.stop();
      lost.stop();
    }
  });

  it.each(['pause', 'kill'] as const)(
    "returns the routine's error when release fails too (%s a majority inside the routine)",
    async (fault) => {
      const redlock = redlockOf();
      const releases = record(channels.release, `fails:${fault}`);
      const boom = new Error('the routine failed');
      try {
        const result = redlock.using(`fails:${fault}`, { ttl: 5_000 }, async () => {
          for (const node of ensemble.nodes.slice(0, 2)) {
            if (fault === 'pause') node.pause();
            else await node.kill();
          }
          throw boom;
        });
        await expect(result).rejects.toBe(boom);
        // The release really failed, and that error went nowhere but the channel.
        expect(releases.events).toHaveLength(1);
        expect(releases.events[0]!.ok).toBe(false);
        expect(releases.events[0]!.error).toBeInstanceOf(QuorumError);
      } finally {
        releases.stop();
        for (const node of ensemble.nodes.slice(0, 2)) {
          if (fault === 'pause') node.resume();
          else await node.restart();
        }
      }
    },
  );

  it("returns the routine's value when release fails after it", async () => {
    const redlock = redlockOf();
    try {
      const result = await redlock.using('fails:late', { ttl: 5_000 }, async () => {
        ensemble.nodes[1]!.pause();
        ensemble.nodes[2]!.pause();
        return 42;
      });
      expect(result).toBe(42);
    } finally {
      ensemble.nodes[1]!.resume();
      ensemble.nodes[2]!.resume();
    }
  });
});

describe('renewal on acquire', () => {
  it('renews with renew: true and reports a lost lock through signal and onLost, once', async () => {
    const ttl = 1_000;
    const redlock = redlockOf({ nodeTimeout: ttl / 5 });
    const losses: LockLostError[] = [];
    const lock: Lock = await acquiringAgain(() =>
      redlock.acquire('renewed', { ttl, renew: true, onLost: (err) => losses.push(err) }),
    );
    await sleep(2.5 * ttl);
    expect(lock.held).toBe(true);
    expect(await holdingNodes('renewed', lock.value)).toBeGreaterThanOrEqual(2);
    // Someone deletes the keys (an operator, a failover that lost them).
    for (const node of ensemble.nodes) {
      const c = node.client();
      await c.del('quorumlock:{renewed}');
      c.disconnect();
    }
    await aborted(lock.signal);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    expect(lock.held).toBe(false);
    await sleep(300);
    expect(losses).toHaveLength(1);
    expect(losses[0]).toBe(lock.signal.reason);
    // Releasing a lost lock is harmless.
    await expect(lock.release()).resolves.toBeUndefined();
  });

  it('does not renew by default', async () => {
    const redlock = redlockOf();
    const lock = await redlock.acquire('plain', { ttl: 200 });
    await aborted(lock.signal);
    // Lost because its validity ran out: at most a small margin before the deadline.
    expect(lock.remaining()).toBeLessThanOrEqual(50);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    await sleep(50);
    expect(await ensemble.keys('quorumlock:{plain}')).toEqual([]);
  });

  it('aborts the signal when the lock is released', async () => {
    const redlock = redlockOf();
    const lock = await redlock.acquire('released', { ttl: 5_000, renew: true });
    expect(lock.signal.aborted).toBe(false);
    await lock.release();
    expect(lock.signal.aborted).toBe(true);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    expect(await ensemble.keys('quorumlock:{released}')).toEqual([]);
  });
});
