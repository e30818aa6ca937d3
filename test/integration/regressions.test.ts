/**
 * Defects found in review or by other suites, kept so they stay fixed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { Redlock } from '../../src/index.js';
import type { LockNode } from '../../src/redis/node.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
beforeAll(async () => {
  ensemble = await startEnsemble({ size: 3 });
});
afterAll(async () => {
  await ensemble?.stop();
});

/** The base nodes, with every acquire answer delivered `delayMs` late. */
function slowAcquire(base: Redlock, delayMs: number): LockNode[] {
  return base.lockNodes.map((n) => ({
    id: n.id,
    acquire: async (req, signal) => {
      const reply = await n.acquire(req, signal);
      await sleep(delayMs);
      return reply;
    },
    extend: (...a) => n.extend(...a),
    release: (...a) => n.release(...a),
    fenceSync: (...a) => n.fenceSync(...a),
    inspect: (...a) => n.inspect(...a),
    close: () => n.close(),
  }));
}

describe('renewal', () => {
  it('renews a lock whose acquire round used most of its ttl before the validity left runs out', async () => {
    const base = new Redlock(ensemble.urls);
    const redlock = Redlock.fromNodes(slowAcquire(base, 500), { nodeTimeout: 1_000 }, systemClock);
    // Acquired with about 190 ms of a 700 ms ttl left: a renewal at ttl/3 would come too late.
    const lock = await redlock.acquire('slow', { ttl: 700, renew: true });
    expect(lock.remaining()).toBeGreaterThan(0);
    expect(lock.remaining()).toBeLessThan(233);
    await sleep(1_400);
    expect(lock.signal.reason).toBeUndefined();
    expect(lock.held).toBe(true);
    await lock.release();
    await redlock.close();
    await base.close();
  });
});

describe('cancellation', () => {
  it('rejects with the signal reason when the signal aborts while the first connections are made', async () => {
    const holder = new Redlock(ensemble.urls);
    const held = await holder.acquire('r', { ttl: 10_000 });
    for (const n of ensemble.nodes) n.pause();
    try {
      const waiter = new Redlock(ensemble.urls);
      const controller = new AbortController();
      const reason = new Error('gave up');
      const result = waiter.acquire('r', { signal: controller.signal }).then(
        () => 'acquired',
        (err: unknown) => err,
      );
      await sleep(100);
      controller.abort(reason);
      const outcome = await Promise.race([result, sleep(1_000).then(() => 'still waiting')]);
      expect(outcome).toBe(reason);
      for (const n of ensemble.nodes) n.resume();
      await waiter.close();
    } finally {
      for (const n of ensemble.nodes) n.resume();
    }
    await held.release();
    await holder.close();
  });
});
