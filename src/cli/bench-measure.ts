/**
 * The measurements of `quorumlock bench`, each against any lock provider:
 * sequential acquire/release, throughput at a concurrency, contended handoff
 * between independent clients, and the nodes' own round-trip times.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { nodeLabel } from './args.js';
import type { NodeRtt } from './bench-report.js';
import { summarize } from './bench-report.js';

/** What the bench needs of a lock provider (Redlock, or any backend). */
export interface BenchProvider {
  acquire(
    resource: string,
    options: { ttl: number; wait?: number; signal?: AbortSignal },
  ): Promise<{ release(): Promise<unknown> }>;
  close(): Promise<void>;
}

/** Reports how far a measurement is, as a fraction from 0 to 1. */
export type OnProgress = (done: number) => void;

/** How long one acquire may wait before it counts as an error, in ms. */
const ACQUIRE_WAIT_MS = 5_000;
/** Unrecorded cycles before a measurement: connections, script loading, JIT. */
const WARMUP_CYCLES = 20;

/** The failed operations of a measurement, counted by error code. */
export class ErrorTally {
  count = 0;
  readonly byCode: Record<string, number> = {};
  /** The last error, rethrown when nothing at all succeeded. */
  last: unknown;

  add(err: unknown): void {
    this.count++;
    this.last = err;
    const code = (err as { code?: unknown } | undefined)?.code;
    const key = typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
    this.byCode[key] = (this.byCode[key] ?? 0) + 1;
  }
}

/** Raw latencies of the sequential measurement, in ms. */
export interface SequentialSamples {
  readonly acquire: number[];
  readonly release: number[];
  readonly errors: ErrorTally;
}

/** One client, one lock at a time, `samples` acquire/release cycles on `resource`. */
export async function measureSequential(
  provider: BenchProvider,
  resource: string,
  samples: number,
  ttl: number,
  onProgress: OnProgress,
): Promise<SequentialSamples> {
  const acquire: number[] = [];
  const release: number[] = [];
  const errors = new ErrorTally();
  for (let i = -WARMUP_CYCLES; i < samples; i++) {
    try {
      const t0 = performance.now();
      const lock = await provider.acquire(resource, { ttl, wait: ACQUIRE_WAIT_MS });
      const t1 = performance.now();
      await lock.release();
      const t2 = performance.now();
      if (i >= 0) {
        acquire.push(t1 - t0);
        release.push(t2 - t1);
      }
    } catch (err) {
      errors.add(err);
    }
    if (i >= 0 && i % 25 === 0) onProgress(i / samples);
  }
  if (acquire.length === 0) throw errors.last;
  return { acquire, release, errors };
}

/** Raw results of the throughput measurement. */
export interface ThroughputSamples {
  readonly acquire: number[];
  readonly cycles: number;
  readonly elapsedMs: number;
  readonly errors: ErrorTally;
}

/** `concurrency` loops of acquire/release on distinct resources for `durationMs`. */
export async function measureThroughput(
  provider: BenchProvider,
  resourcePrefix: string,
  concurrency: number,
  durationMs: number,
  ttl: number,
  onProgress: OnProgress,
): Promise<ThroughputSamples> {
  const acquire: number[] = [];
  let cycles = 0;
  const errors = new ErrorTally();
  const start = performance.now();
  const deadline = start + durationMs;
  const ticker = setInterval(() => onProgress((performance.now() - start) / durationMs), 250);
  const loop = async (worker: number) => {
    const resource = `${resourcePrefix}${worker}`;
    while (performance.now() < deadline) {
      try {
        const t0 = performance.now();
        const lock = await provider.acquire(resource, { ttl, wait: ACQUIRE_WAIT_MS });
        acquire.push(performance.now() - t0);
        await lock.release();
        cycles++;
      } catch (err) {
        errors.add(err);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, (_, w) => loop(w)));
  } finally {
    clearInterval(ticker);
  }
  if (cycles === 0) throw errors.last;
  return { acquire, cycles, elapsedMs: performance.now() - start, errors };
}

/** Raw results of the contention measurement. */
export interface ContendedSamples {
  readonly handoff: number[];
  readonly perClient: number[];
  readonly elapsedMs: number;
  readonly errors: ErrorTally;
}

/**
 * `clients` independent clients (one provider each, as separate processes
 * would be) take turns on one resource for `durationMs`, each holding it for
 * `holdMs`. A handoff is the time from the start of one holder's release to
 * the next holder's acquire returning.
 */
export async function measureContended(
  providers: readonly BenchProvider[],
  resource: string,
  durationMs: number,
  holdMs: number,
  ttl: number,
  onProgress: OnProgress,
): Promise<ContendedSamples> {
  const handoff: number[] = [];
  const perClient = providers.map(() => 0);
  const errors = new ErrorTally();
  let releaseStartedAt: number | undefined;
  const stop = new AbortController();
  const start = performance.now();
  const timer = setTimeout(() => stop.abort(), durationMs);
  const ticker = setInterval(() => onProgress((performance.now() - start) / durationMs), 250);
  const client = async (provider: BenchProvider, index: number) => {
    while (!stop.signal.aborted) {
      let lock: { release(): Promise<unknown> };
      try {
        lock = await provider.acquire(resource, { ttl, signal: stop.signal });
      } catch (err) {
        if (!stop.signal.aborted) {
          errors.add(err);
        }
        continue;
      }
      const now = performance.now();
      if (releaseStartedAt !== undefined) handoff.push(now - releaseStartedAt);
      releaseStartedAt = undefined;
      perClient[index]!++;
      if (holdMs > 0) await sleep(holdMs);
      releaseStartedAt = performance.now();
      try {
        await lock.release();
      } catch (err) {
        errors.add(err);
      }
    }
  };
  try {
    await Promise.all(providers.map((p, i) => client(p, i)));
  } finally {
    clearTimeout(timer);
    clearInterval(ticker);
  }
  if (perClient.every((n) => n === 0) && errors.count > 0) throw errors.last;
  return { handoff, perClient, elapsedMs: performance.now() - start, errors };
}

/**
 * Each Redis node's PING round-trip time over `samples` sequential PINGs,
 * all nodes at once. A node that cannot be reached is reported, not thrown.
 */
export async function measureRedisRtt(
  urls: readonly string[],
  samples: number,
): Promise<NodeRtt[]> {
  return Promise.all(
    urls.map(async (url): Promise<NodeRtt> => {
      const node = nodeLabel(url);
      const client = new Redis(url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        connectTimeout: 3_000,
        retryStrategy: () => null,
      });
      client.on('error', () => {});
      try {
        await client.connect();
        const times: number[] = [];
        for (let i = -5; i < samples; i++) {
          const t0 = performance.now();
          await client.ping();
          if (i >= 0) times.push(performance.now() - t0);
        }
        return { node, ok: true, rtt: summarize(times) };
      } catch (err) {
        return { node, ok: false, error: err instanceof Error ? err.message : String(err) };
      } finally {
        client.disconnect();
      }
    }),
  );
}

/**
 * The fastest any round can be: it needs `quorum` answers, so it waits at
 * least for the `quorum`-th fastest node. Null when fewer nodes answered.
 */
export function physicalLimit(nodes: readonly NodeRtt[], quorum: number): number | null {
  const medians = nodes.flatMap((n) => (n.ok && n.rtt ? [n.rtt.p50Ms] : [])).sort((a, b) => a - b);
  return medians.length >= quorum ? medians[quorum - 1]! : null;
}
