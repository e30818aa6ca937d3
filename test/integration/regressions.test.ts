/**
 * Defects found in review or by other suites, kept so they stay fixed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { Redlock } from '../../src/index.js';
import type { LockNode } from '../../src/redis/node.js';
import { permitKeys } from '../../src/redis/permits.js';
import { scripts } from '../../src/redis/scripts/index.js';
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

describe('requests of one acquisition that overtake each other', () => {
  // One connection delivers in order, but a cluster redirect can resend an
  // earlier round's request after a later one: the stale request must not
  // replace the later round's value (its undo would then free the node under
  // the holder).
  const proposal = () => String(Date.now() * 1000 + 250_000);

  it('leaves a lock key holding a later round of the acquisition as it is', async () => {
    const redis = ensemble.nodes[0]!.client();
    const keys = ['quorumlock:{overtaken}', 'quorumlock:{overtaken}:fence'];
    keys.push('quorumlock:{overtaken}:queue', 'quorumlock:{overtaken}:lease');
    const acquire = (value: string) =>
      redis.eval(
        scripts.acquire.lua,
        4,
        ...keys,
        value,
        'P',
        '10000',
        '1',
        '1',
        '',
        '0',
        '3000',
        '500',
        'c:',
        proposal(),
        '3600000',
      );
    try {
      expect(((await acquire('P.1')) as number[])[0]).toBe(1);
      expect(await acquire('P.0')).toEqual([0, -1, 0, -1, 0]);
      expect(await redis.get(keys[0]!)).toBe('P.1');
      // A later round still takes its own leftover.
      expect(((await acquire('P.2')) as number[])[0]).toBe(1);
      expect(await redis.get(keys[0]!)).toBe('P.2');
    } finally {
      await redis.del(...keys);
      redis.disconnect();
    }
  });

  it('leaves a semaphore slot or a writer field holding a later round as it is', async () => {
    const redis = ensemble.nodes[0]!.client();
    const run = async (family: 'semaphore' | 'rwlock', kind: string, value: string) => {
      const keys = permitKeys('quorumlock:', family, 'overtaken');
      const member = `i.0${kind}`;
      const field = kind === 'w' ? 'w' : '';
      const args = ['acquire', kind, '2', value, field, member, '10000', '500', 'c:'];
      args.push('P', '0', '0', '3000', '1', proposal(), '', '3600000');
      return { keys, reply: await redis.eval(scripts.permits.lua, 5, ...keys, ...args) };
    };
    try {
      for (const [family, kind, field] of [
        ['semaphore', 's', '0'],
        ['rwlock', 'w', 'w'],
      ] as const) {
        const { keys } = await run(family, kind, 'P.1');
        expect(await redis.hgetall(keys[0]!)).toEqual({ [field]: 'P.1' });
        expect((await run(family, kind, 'P.0')).reply).toEqual([0, -1, 0, -1]);
        expect(await redis.hgetall(keys[0]!)).toEqual({ [field]: 'P.1' });
        expect(((await run(family, kind, 'P.2')).reply as unknown[])[0]).toBe(1);
        expect(await redis.hgetall(keys[0]!)).toEqual({ [field]: 'P.2' });
        await redis.del(...keys);
      }
    } finally {
      redis.disconnect();
    }
  });
});
