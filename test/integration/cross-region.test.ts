/**
 * Emulated cross-region nodes: each node sits behind a TCP delay proxy, 70 to
 * 200 ms of round trip away, and the clients use default options only. The
 * learned nodeTimeout must let them acquire, keep the lock through renewal,
 * and still get the lost signal before the deadline when a majority stalls.
 */
import diagnostics from 'node:diagnostics_channel';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channels, LockLostError, Redlock, type RoundEvent } from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';
import { type FaultProxy, startProxy } from '../harness/proxy.js';

/** Round trips of the three emulated regions, ms: the majority-th node is 140 ms away. */
const RTTS = [70, 140, 200];

let ensemble: Ensemble;
const proxies: FaultProxy[] = [];
const instances: Redlock[] = [];

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 3 });
});

afterAll(async () => {
  await Promise.allSettled(instances.map((r) => r.close()));
  await Promise.allSettled(proxies.map((p) => p.close()));
  await ensemble?.stop();
});

/** Three proxies, one per node, each adding half of its round trip in each direction. */
async function regions(): Promise<FaultProxy[]> {
  const set = await Promise.all(
    ensemble.nodes.map((n) => startProxy({ host: n.host, port: n.port })),
  );
  for (const [i, p] of set.entries()) p.setDelay(RTTS[i]! / 2);
  proxies.push(...set);
  return set;
}

/** A Redlock with default options over `set`, closed after the file. */
function client(set: readonly FaultProxy[]): Redlock {
  const redlock = new Redlock(set.map((p) => p.url));
  instances.push(redlock);
  return redlock;
}

/** Events of `channel` about `resource` until stop(). */
function record(channel: string, resource: string) {
  const events: RoundEvent[] = [];
  const listener = (message: unknown) => {
    const e = message as RoundEvent;
    if (e.resources.includes(resource)) events.push(e);
  };
  diagnostics.subscribe(channel, listener);
  return { events, stop: () => diagnostics.unsubscribe(channel, listener) };
}

/** Resolves once `n` successful rounds were recorded; rejects if `signal` aborts first. */
async function until(events: RoundEvent[], n: number, signal: AbortSignal): Promise<void> {
  while (events.filter((e) => e.ok).length < n) {
    if (signal.aborted) throw signal.reason;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Median of `xs`. */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Round trip of a PING through each proxy, median of `n`, ms. */
async function pingRtts(set: readonly FaultProxy[], n: number): Promise<number[]> {
  return Promise.all(
    set.map(async (p) => {
      const redis = new Redis(p.port, '127.0.0.1', { lazyConnect: true });
      try {
        await redis.connect();
        const samples: number[] = [];
        for (let i = 0; i < n; i++) {
          const t = performance.now();
          await redis.ping();
          samples.push(performance.now() - t);
        }
        return median(samples);
      } finally {
        redis.disconnect();
      }
    }),
  );
}

describe.concurrent('cross-region nodes (70, 140, 200 ms) with default options', () => {
  for (const ttl of [2_000, 10_000]) {
    it(`acquires, renews and signals a stalled majority before the deadline (ttl ${ttl} ms)`, async () => {
      const set = await regions();
      const redlock = client(set);
      const resource = `region-${ttl}`;
      const extended = record(channels.extend, resource);
      try {
        // A fresh instance: nothing measured yet, the cold-start deadline applies.
        const lock = await redlock.acquire(resource, { ttl, wait: 5_000, renew: true });
        expect(lock.held).toBe(true);
        expect(lock.remaining()).toBeGreaterThan(0);
        expect(lock.nodes.filter((n) => n.status === 'acquired').length).toBeGreaterThanOrEqual(2);

        // Renewal keeps it: two successful extends, about ttl/3 apart, the lock held throughout.
        await until(extended.events, 2, lock.signal);
        expect(lock.held).toBe(true);
        expect(lock.remaining()).toBeGreaterThan(0);

        // A majority stalls: the lost signal fires while the old validity still runs.
        let remainingAtLoss = Number.NaN;
        const lost = new Promise<unknown>((resolve) => {
          lock.signal.addEventListener(
            'abort',
            () => {
              remainingAtLoss = lock.remaining();
              resolve(lock.signal.reason);
            },
            { once: true },
          );
        });
        set[1]!.hold();
        set[2]!.hold();
        const reason = await lost;
        expect(reason).toBeInstanceOf(LockLostError);
        expect(remainingAtLoss).toBeGreaterThan(0);
        set[1]!.flush();
        set[2]!.flush();
      } finally {
        extended.stop();
      }
    });
  }

  it('acquires at about the majority-th round trip once warm (ttls 2 s and 10 s)', async () => {
    const set = await regions();
    const redlock = client(set);
    const rows: string[] = [];
    for (const ttl of [2_000, 10_000]) {
      const resource = `warm-${ttl}`;
      // Warm up: connections, scripts, the fence counters agreeing, the estimates.
      for (let i = 0; i < 5; i++) await (await redlock.acquire(resource, { ttl })).release();
      const times: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t = performance.now();
        const lock = await redlock.acquire(resource, { ttl, wait: 5_000 });
        times.push(performance.now() - t);
        await lock.release();
      }
      expect(times).toHaveLength(15);
      const rtts = await pingRtts(set, 5);
      const majorityRtt = [...rtts].sort((a, b) => a - b)[1]!;
      const p50 = median(times);
      rows.push(
        `| ${ttl} | ${rtts.map((r) => r.toFixed(0)).join(' / ')} | ${majorityRtt.toFixed(0)} | ${p50.toFixed(0)} | ${((p50 / majorityRtt - 1) * 100).toFixed(0)}% |`,
      );
    }
    // Informative, not asserted (timings on a shared machine): printed for the docs.
    console.log(
      [
        '| ttl ms | node RTTs ms | majority-th RTT ms | acquire p50 ms | over |',
        '| --- | --- | --- | --- | --- |',
        ...rows,
      ].join('\n'),
    );
  });
});
