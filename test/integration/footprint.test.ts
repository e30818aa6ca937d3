/**
 * Nothing quorumlock leaves on a node lives forever (the lifetimes of
 * docs/architecture.md, "Keys on the nodes"): after a mixed workload — plain
 * and multi-resource locks, tryAcquire, contended waiters, waiters aborted or
 * timed out while queued, leader election — every key on every node has an
 * expiry, no turn mark or queue entry of a waiter that is gone outlives its
 * lease, and once the leases have run out only fence counters (with their
 * retention) remain.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AcquireTimeoutError, type Lock, Redlock, type RedlockOptions } from '../../src/index.js';
import { FENCE_RETENTION_MS, QUEUE_LEASE_MS } from '../../src/redis/redlock.js';
import { connected, nodeClients } from '../harness/connected.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
let direct: Redis[] = [];

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 3, args: ['--maxmemory-policy', 'noeviction'] });
  direct = nodeClients(ensemble);
});
afterAll(async () => {
  for (const c of direct) c.disconnect();
  await ensemble?.stop();
});

/** Every key on every node with its remaining ttl (-1: no expiry) and, for strings, its value. */
async function everyKey(): Promise<
  Array<{ node: number; key: string; pttl: number; value: string | null }>
> {
  const perNode = await Promise.all(
    direct.map(async (c, node) => {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await c.scan(cursor, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      return Promise.all(
        [...new Set(keys)].map(async (key) => {
          const type = await c.type(key);
          const value = type === 'string' ? await c.get(key) : null;
          return { node, key, pttl: await c.pttl(key), value };
        }),
      );
    }),
  );
  // A key that expired between SCAN and PTTL (-2) is simply gone.
  return perNode.flat().filter((k) => k.pttl !== -2);
}

const OPTIONS: RedlockOptions = { ttl: 5_000, nodeTimeout: 1_000 };

describe('footprint', () => {
  it('leaves only keys with an expiry, and no queue entry or turn of a gone waiter past its lease', async () => {
    // Independent clients: waiters of one instance line up locally and only
    // the first of them queues on the nodes.
    const [a, b, c, d, e, f] = (await Promise.all(
      Array.from({ length: 6 }, () => connected(new Redlock(ensemble.urls, OPTIONS))),
    )) as [Redlock, Redlock, Redlock, Redlock, Redlock, Redlock];
    try {
      // Plain, tryAcquire, multi-resource.
      await (await a.acquire('plain')).release();
      await (await b.tryAcquire('plain:try'))!.release();
      await (await a.acquire(['multi:a', 'multi:b'])).release();

      // Contended: a holds; b and c queue and are served; d (aborted), e (its
      // wait runs out) and f (tryAcquire with a wait) give up while queued;
      // tryAcquire without a wait is refused.
      const held = await a.acquire('hot', { ttl: 10_000 });
      const heldMulti = await a.acquire(['multi:a', 'multi:b']);
      const served: string[] = [];
      const waiting = [
        b.acquire('hot').then(async (l: Lock) => {
          served.push('b');
          await l.release();
        }),
        c.acquire('hot').then(async (l: Lock) => {
          served.push('c');
          await l.release();
        }),
        d.acquire(['multi:b', 'multi:a']).then((l: Lock) => l.release()),
      ];
      const abort = new AbortController();
      const aborted = d.acquire('hot', { signal: abort.signal }).then(
        () => 'acquired',
        (err: unknown) => err,
      );
      const timedOut = e.acquire('hot', { wait: 1_500 }).then(
        () => 'acquired',
        (err: unknown) => err,
      );
      const tried = f.tryAcquire('hot', { wait: 1_000 });
      const queued = () => Promise.all(direct.map((r) => r.zcard('quorumlock:{hot}:queue')));
      await vi.waitFor(async () => expect(await queued()).toEqual([5, 5, 5]), {
        timeout: 1_000,
        interval: 5,
      });
      expect(await a.tryAcquire('hot')).toBeNull();
      abort.abort(new Error('gave up'));
      expect(await aborted).toEqual(new Error('gave up'));
      expect(await timedOut).toBeInstanceOf(AcquireTimeoutError);
      expect(await tried).toBeNull();
      // Those that gave up left the queue at once.
      await vi.waitFor(async () => expect(await queued()).toEqual([2, 2, 2]), {
        timeout: 500,
        interval: 5,
      });
      await held.release();
      await heldMulti.release();
      await Promise.all(waiting);
      expect(served).toEqual(['b', 'c']);

      // Leader election: two candidates, one elected, both stopped.
      let elected = 0;
      const leaders = [a, b].map((r) =>
        r.leader('leader', async (signal) => {
          elected++;
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        }),
      );
      await vi.waitFor(() => expect(elected).toBe(1), { timeout: 5_000, interval: 10 });
      await sleep(100);
      await Promise.all(leaders.map((l) => l.stop()));
    } finally {
      await Promise.all([a, b, c, d, e, f].map((r) => r.close()));
    }
    const ended = performance.now();

    // No key without an expiry, now or ever.
    const keys = await everyKey();
    const forever = keys.filter((k) => k.pttl === -1);
    expect(forever, `keys without an expiry: ${JSON.stringify(forever)}`).toEqual([]);
    for (const k of keys.filter((k) => k.key.endsWith(':fence'))) {
      expect(k.pttl).toBeLessThanOrEqual(FENCE_RETENTION_MS);
    }

    // Waiters that gave up left the queues at once, and no turn is pending for
    // anyone: every waiter is gone. (A lost leave would be covered by the lease;
    // on healthy nodes it must not be needed.)
    const leftovers = (all: typeof keys) =>
      all.filter(
        (k) =>
          k.key.endsWith(':queue') || k.key.endsWith(':lease') || k.value?.startsWith('~turn~'),
      );
    await vi.waitFor(async () => expect(leftovers(await everyKey())).toEqual([]), {
      timeout: 1_000,
      interval: 20,
    });

    // Once every lease has run out, only fence counters remain, each expiring.
    await sleep(Math.max(0, QUEUE_LEASE_MS + 500 - (performance.now() - ended)));
    const after = await everyKey();
    expect(
      after.filter((k) => !k.key.endsWith(':fence')),
      'only fence counters remain',
    ).toEqual([]);
    expect(after.length).toBeGreaterThan(0);
    for (const k of after) {
      expect(k.pttl).toBeGreaterThan(0);
      expect(k.pttl).toBeLessThanOrEqual(FENCE_RETENTION_MS);
    }
    console.log(
      `footprint: ${keys.length} keys right after the workload, ${after.length} fence counters after the lease (${QUEUE_LEASE_MS} ms), none without expiry`,
    );
  });
});
