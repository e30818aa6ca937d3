import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redlock, type RedlockOptions } from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
const instances: Redlock[] = [];

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 5 });
});
afterAll(async () => {
  await ensemble?.stop();
});
afterEach(async () => {
  await Promise.all(instances.splice(0).map((r) => r.close()));
  await Promise.all(ensemble.nodes.map((n) => n.flush()));
});

/** One critical section as the worker saw it (monotonic ms). */
interface Section {
  readonly worker: number;
  /** When the worker called acquire. */
  readonly asked: number;
  /** When acquire resolved: the section starts. */
  readonly start: number;
  /** When the worker left the section, before calling release. */
  readonly end: number;
  readonly fence: number;
}

interface Run {
  readonly sections: Section[];
  /** Times a worker entered while another was inside. */
  readonly overlaps: number;
}

/**
 * `workers` loops, each on its own Redlock from `redlockOf`, take `resource`
 * over and over for `durationMs`: hold it a few ms (a shared counter checks
 * that nobody else is inside), release it, do a little work outside, repeat.
 */
async function contend(
  workers: number,
  durationMs: number,
  redlockOf: (worker: number) => Redlock,
): Promise<Run> {
  const sections: Section[] = [];
  let inside = 0;
  let overlaps = 0;
  const stopAt = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      const redlock = redlockOf(worker);
      while (performance.now() < stopAt) {
        const asked = performance.now();
        const lock = await redlock.acquire('hot', { wait: 20_000 });
        const start = performance.now();
        inside++;
        if (inside > 1) overlaps++;
        await sleep(1 + Math.random() * 5);
        const end = performance.now();
        inside--;
        sections.push({ worker, asked, start, end, fence: lock.fence! });
        await lock.release();
        await sleep(Math.random() * 10);
      }
    }),
  );
  sections.sort((a, b) => a.start - b.start);
  return { sections, overlaps };
}

/**
 * The longest time between one section's end and the next one's start while
 * some worker was waiting throughout (it asked before the end and got the
 * lock no earlier than the next start).
 */
function longestGapWithWaiter(sections: readonly Section[]): number {
  let longest = 0;
  for (let i = 0; i + 1 < sections.length; i++) {
    const prev = sections[i]!;
    const next = sections[i + 1]!;
    const waited = sections.some((s) => s.asked <= prev.end && s.start >= next.start);
    if (waited) longest = Math.max(longest, next.start - prev.end);
  }
  return longest;
}

// nodeTimeout well above event-loop stalls of a loaded machine: this file is about contention, not faults.
const OPTIONS: RedlockOptions = {
  ttl: 5_000,
  nodeTimeout: 1_000,
  retry: { minDelay: 10, maxDelay: 100, factor: 2 },
};
/** Room for release and acquire rounds, pub/sub delivery and timer lag on a loaded 2-core machine. */
const SLACK_MS = 650;

describe('contention', () => {
  it('keeps ten independent clients mutually exclusive, serves each, and leaves no long idle gap', async () => {
    const workers = 10;
    const run = await contend(workers, 3_000, () => {
      const redlock = new Redlock(ensemble.urls, OPTIONS);
      instances.push(redlock);
      return redlock;
    });
    const { sections } = run;
    expect(run.overlaps).toBe(0);
    for (let i = 1; i < sections.length; i++) {
      expect(sections[i]!.start).toBeGreaterThanOrEqual(sections[i - 1]!.end);
      // Each later holder gets a larger fencing token.
      expect(sections[i]!.fence).toBeGreaterThan(sections[i - 1]!.fence);
    }
    const served = new Set(sections.map((s) => s.worker));
    expect(served.size).toBe(workers);
    const gap = longestGapWithWaiter(sections);
    console.log(
      `contention: ${sections.length} sections by ${workers} clients in 3 s, longest gap with a waiter ${gap.toFixed(1)} ms`,
    );
    expect(gap).toBeLessThan(OPTIONS.retry!.maxDelay! + SLACK_MS);
  });

  it('keeps waiters of one client mutually exclusive and serves each of them', async () => {
    const redlock = new Redlock(ensemble.urls, OPTIONS);
    instances.push(redlock);
    const workers = 6;
    const run = await contend(workers, 2_000, () => redlock);
    expect(run.overlaps).toBe(0);
    expect(new Set(run.sections.map((s) => s.worker)).size).toBe(workers);
    expect(longestGapWithWaiter(run.sections)).toBeLessThan(OPTIONS.retry!.maxDelay! + SLACK_MS);
  });
});
