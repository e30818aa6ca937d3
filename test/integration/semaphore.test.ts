/**
 * The counting semaphore on real redis-server nodes: never more than `limit`
 * holders among independent clients (with a paused node, with a holder killed
 * by SIGKILL), permits of a dead holder come back after their ttl, a paused
 * majority fires the permit's signal, waiters are served in order, and the
 * holding features and bad-input rules of a lock.
 */
import diagnostics from 'node:diagnostics_channel';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  channels,
  InvalidArgumentError,
  type Lock,
  LockLostError,
  Redlock,
  type RedlockOptions,
} from '../../src/index.js';
import { Child, hrNow, killAll } from '../fixtures/child.mjs';
import { copyDist } from '../harness/dist-copy.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
let direct: Redis[] = [];
let dist: string | undefined;
const redlocks: Redlock[] = [];

function client(options: RedlockOptions = {}): Redlock {
  const r = new Redlock(ensemble.urls, { ttl: 10_000, nodeTimeout: 1_000, ...options });
  redlocks.push(r);
  return r;
}

const queueKey = (name: string) => `quorumlock:{${name}}:semaphore:queue`;

/** Waiters queued for `name`, node by node. */
function queued(name: string): Promise<number[]> {
  return Promise.all(direct.map((c) => c.zcard(queueKey(name))));
}

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 3 });
  direct = ensemble.nodes.map((n) => {
    const c = n.client();
    c.on('error', () => {});
    return c;
  });
});
afterEach(async () => {
  for (const n of ensemble.nodes) n.resume();
  await killAll();
  await Promise.all(redlocks.splice(0).map((r) => r.close()));
  await Promise.all(direct.map((c) => c.flushall()));
});
afterAll(async () => {
  for (const c of direct) c.disconnect();
  await ensemble?.stop();
  if (dist) rmSync(dist, { recursive: true, force: true });
});

/**
 * Independent clients take permits of `name` `rounds` times each, holding a
 * few ms; returns the most holders seen at once. A permit counts from the
 * moment acquire resolves until release is called, and must still be valid then.
 */
async function contend(name: string, limit: number, clients: number, rounds: number) {
  let holders = 0;
  let most = 0;
  let served = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const semaphore = client().semaphore(name, { limit });
      for (let i = 0; i < rounds; i++) {
        const permit = await semaphore.acquire({ wait: 20_000 });
        holders++;
        most = Math.max(most, holders);
        await sleep(Math.random() * 4);
        expect(permit.remaining()).toBeGreaterThan(0);
        holders--;
        served++;
        await permit.release();
      }
    }),
  );
  return { most, served };
}

describe('semaphore: at most limit holders', () => {
  it('never has more than limit holders among independent clients', async () => {
    const { most, served } = await contend('jobs', 3, 8, 6);
    expect(served).toBe(48);
    expect(most).toBeLessThanOrEqual(3);
  });

  it('never has more than limit holders while a node is paused', async () => {
    ensemble.nodes[2]!.pause();
    const { most, served } = await contend('paused', 2, 6, 4);
    expect(served).toBe(24);
    expect(most).toBeLessThanOrEqual(2);
  });

  it('gives the permits of a holder killed by SIGKILL back only after their ttl', async () => {
    dist ??= await copyDist('test-dist-semaphore');
    const ttl = 1_500;
    const holder = new Child('./permit-holder.mjs', {
      urls: ensemble.urls,
      name: 'killed',
      limit: 2,
      ttl,
      count: 2,
      dist,
    });
    const { until } = (await holder.waitFor((e) => e.event === 'acquired', {
      timeoutMs: 20_000,
    })) as unknown as {
      until: number;
    };
    holder.kill('SIGKILL');
    await holder.exited;
    const semaphore = client().semaphore('killed', { limit: 2 });
    const askedAt = hrNow();
    const early = await semaphore.tryAcquire();
    // Asked while the dead holder's permits were still valid: none may be free.
    if (askedAt < until) expect(early).toBeNull();
    await early?.release();
    const [a, b] = await Promise.all([
      semaphore.acquire({ wait: 10_000 }),
      semaphore.acquire({ wait: 10_000 }),
    ]);
    expect(hrNow()).toBeGreaterThan(until);
    expect(a!.fence).not.toBe(b!.fence);
    await Promise.all([a!.release(), b!.release()]);
  });
});

describe('semaphore: canary', () => {
  it('lets two holders of a one-permit semaphore overlap once a majority of nodes lost its data', async () => {
    // Beyond the assumptions (safety.md §6): the check above must be able to fail.
    const first = await client().semaphore('canary', { limit: 1 }).acquire({ ttl: 60_000 });
    await vi.waitFor(
      async () => expect(await ensemble.keys('quorumlock:{canary}:semaphore')).toHaveLength(3),
      { timeout: 5_000, interval: 10 },
    );
    await Promise.all([ensemble.nodes[1]!.restart(), ensemble.nodes[2]!.restart()]);
    const second = await client().semaphore('canary', { limit: 1 }).acquire({ wait: 10_000 });
    expect(first.remaining()).toBeGreaterThan(0);
    expect(second.remaining()).toBeGreaterThan(0);
    // The first holder's connections to the restarted nodes may still be reconnecting.
    await Promise.all([first.release().catch(() => {}), second.release()]);
  });
});

describe('semaphore: waiting', () => {
  it('serves waiters in the order they began waiting', async () => {
    const holder = client().semaphore('fifo', { limit: 2 });
    const held = [await holder.acquire({ ttl: 60_000 }), await holder.acquire({ ttl: 60_000 })];
    const order: number[] = [];
    const done: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) {
      const semaphore = client().semaphore('fifo', { limit: 2 });
      done.push(
        semaphore.acquire({ wait: 20_000 }).then(async (permit) => {
          order.push(i);
          await sleep(10);
          await permit.release();
        }),
      );
      // The next waiter starts only once this one is queued on every node.
      await vi.waitFor(async () => expect(await queued('fifo')).toEqual([i + 1, i + 1, i + 1]), {
        timeout: 10_000,
        interval: 10,
      });
    }
    await Promise.all(held.map((p) => p.release()));
    await Promise.all(done);
    // Two permits: a waiter may pass the one just ahead of it, never one further ahead.
    for (const [place, w] of order.entries()) expect(Math.abs(w - place)).toBeLessThanOrEqual(1);
    expect(await queued('fifo')).toEqual([0, 0, 0]);
  });

  it('leaves the queue when its wait runs out, and tryAcquire never queues', async () => {
    const semaphore = client().semaphore('leave', { limit: 1 });
    const held = await semaphore.acquire({ ttl: 60_000 });
    expect(await semaphore.tryAcquire()).toBeNull();
    expect(await queued('leave')).toEqual([0, 0, 0]);
    await expect(semaphore.acquire({ wait: 200 })).rejects.toMatchObject({
      code: 'ERR_LOCK_ACQUIRE_TIMEOUT',
    });
    await vi.waitFor(async () => expect(await queued('leave')).toEqual([0, 0, 0]), {
      timeout: 5_000,
    });
    await held.release();
    const again = await semaphore.tryAcquire();
    expect(again).not.toBeNull();
    await again!.release();
  });
});

describe('semaphore: many waiters on one Redlock', () => {
  it('serves 25 waiters of one instance without a listener warning', async () => {
    const redlock = client();
    const semaphore = redlock.semaphore('many', { limit: 2 });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const held = await Promise.all([semaphore.acquire(), semaphore.acquire()]);
      let served = 0;
      const waiting = Array.from({ length: 25 }, async () => {
        const permit = await semaphore.acquire({ wait: 30_000 });
        served++;
        await permit.release();
      });
      await sleep(100);
      for (const permit of held) await permit.release();
      await Promise.all(waiting);
      expect(served).toBe(25);
      // Warnings are emitted on the next tick.
      await sleep(10);
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('semaphore: holding', () => {
  it('fires the signal when a paused majority lets the permit lapse', async () => {
    const semaphore = client().semaphore('lapse', { limit: 2 });
    const lost = new Promise<unknown>((resolve) => {
      semaphore
        .using({ ttl: 1_000 }, async (signal) => {
          ensemble.nodes[0]!.pause();
          ensemble.nodes[1]!.pause();
          await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
          resolve(signal.reason);
        })
        .catch(resolve);
    });
    expect(await lost).toBeInstanceOf(LockLostError);
  });

  it('renews, extends, releases idempotently and disposes with await using', async () => {
    const semaphore = client().semaphore('hold', { limit: 1 });
    let permit: Lock | undefined;
    {
      await using p = await semaphore.acquire({ ttl: 5_000 });
      permit = p;
      await p.extend(30_000);
      expect(p.remaining()).toBeGreaterThan(5_000);
      expect(await semaphore.tryAcquire()).toBeNull();
    }
    expect(permit.held).toBe(false);
    expect(permit.signal.aborted).toBe(true);
    await permit.release();
    const next = await semaphore.tryAcquire();
    expect(next).not.toBeNull();
    expect(next!.fence).toBeGreaterThan(permit.fence!);
    await next!.release();
    await next!.release();
    const result = await semaphore.using(async (signal, p) => {
      expect(signal.aborted).toBe(false);
      return p.fence;
    });
    expect(result).toBeGreaterThan(next!.fence!);
  });

  it('publishes its rounds on the diagnostics channels', async () => {
    const events: Array<{ primitive?: string; ok: boolean }> = [];
    const listener = (e: unknown) => events.push(e as { primitive?: string; ok: boolean });
    diagnostics.subscribe(channels.acquire, listener);
    try {
      const semaphore = client().semaphore('observed', { limit: 1 });
      const permit = await semaphore.acquire();
      await permit.release();
    } finally {
      diagnostics.unsubscribe(channels.acquire, listener);
    }
    expect(events).toContainEqual(expect.objectContaining({ primitive: 'semaphore', ok: true }));
  });
});

describe('semaphore: bad input', () => {
  it('rejects bad names, limits and options before any I/O', async () => {
    const r = client();
    for (const options of [
      undefined,
      {},
      { limit: 0 },
      { limit: 1.5 },
      { limit: 1001 },
      { limit: '2' },
      { limit: 2, ttl: 5 },
    ]) {
      expect(() => r.semaphore('bad', options as never)).toThrow(InvalidArgumentError);
    }
    expect(() => r.semaphore('', { limit: 1 })).toThrow(InvalidArgumentError);
    expect(() => r.semaphore(7 as never, { limit: 1 })).toThrow(InvalidArgumentError);
    const semaphore = r.semaphore('bad', { limit: 2 });
    await expect(semaphore.acquire({ ttl: -1 })).rejects.toThrow(InvalidArgumentError);
    await expect(semaphore.tryAcquire({ wait: -5 })).rejects.toThrow(InvalidArgumentError);
    await expect(semaphore.acquire({ nope: 1 } as never)).rejects.toThrow(InvalidArgumentError);
    await expect(semaphore.using(undefined as never)).rejects.toThrow(InvalidArgumentError);
    expect(await ensemble.keys()).toEqual([]);
  });
});
