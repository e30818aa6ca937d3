import { describe, expect, it } from 'vitest';
import {
  COLD_MS,
  defaultNodeTimeout,
  FLOOR_MS,
  RttEstimator,
  recordRtt,
  roundTimeout,
  rttOf,
  timeoutBound,
} from '../../src/latency.js';

/** An estimator that has seen `samples`, in order. */
function measured(...samples: number[]): RttEstimator {
  const e = new RttEstimator();
  for (const s of samples) e.record(s);
  return e;
}

describe('RttEstimator', () => {
  it('knows nothing before the first sample', () => {
    const e = new RttEstimator();
    expect(e.srtt).toBeUndefined();
    expect(e.timeout()).toBeUndefined();
    expect(e.samples).toBe(0);
  });

  it('starts from the first sample with half of it as deviation (RFC 6298)', () => {
    const e = measured(100);
    expect(e.srtt).toBe(100);
    expect(e.rttvar).toBe(50);
    // 2 × (100 + 4 × 50)
    expect(e.timeout()).toBe(600);
  });

  it('settles near twice the round trip of a steady node', () => {
    const e = measured(...Array.from({ length: 100 }, () => 200));
    expect(e.srtt).toBeCloseTo(200, 6);
    expect(e.timeout()).toBeGreaterThanOrEqual(400);
    expect(e.timeout()).toBeLessThan(401);
  });

  it('never asks less than the floor, however near the node', () => {
    const e = measured(...Array.from({ length: 50 }, () => 0.2));
    expect(e.timeout()).toBe(FLOOR_MS);
  });

  it('covers a jittery node with its deviation', () => {
    const jitter = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 70 : 200));
    const e = measured(...jitter);
    // Every sample, the slowest included, stays well inside the deadline.
    expect(e.timeout()).toBeGreaterThan(2 * 200);
  });

  it('lets one long pause raise the deadline only boundedly, and forgets it', () => {
    const e = measured(...Array.from({ length: 50 }, () => 1));
    const before = e.timeout()!;
    e.record(10_000);
    const after = e.timeout()!;
    expect(after).toBeLessThan(10 * before);
    for (let i = 0; i < 100; i++) e.record(1);
    expect(e.timeout()).toBe(FLOOR_MS);
  });

  it('learns a node that became slower within a few of its late replies', () => {
    const e = measured(...Array.from({ length: 50 }, () => 1));
    let calls = 0;
    while (e.timeout()! <= 300) {
      e.record(300);
      calls++;
    }
    expect(calls).toBeLessThanOrEqual(5);
  });

  it('ignores impossible samples', () => {
    const e = measured(Number.NaN, -1, Number.POSITIVE_INFINITY);
    expect(e.samples).toBe(0);
    expect(e.srtt).toBeUndefined();
  });
});

describe('timeoutBound', () => {
  it('is a quarter of the ttl', () => {
    expect(timeoutBound(2_000)).toBe(500);
    expect(timeoutBound(10_000)).toBe(2_500);
    expect(timeoutBound(30_000)).toBe(7_500);
  });

  it('keeps the floor for small ttls, but never more than half the ttl', () => {
    expect(timeoutBound(100)).toBe(FLOOR_MS);
    expect(timeoutBound(40)).toBe(20);
  });
});

describe('roundTimeout', () => {
  it('waits the cold-start deadline for nodes never measured, within the ttl bound', () => {
    expect(roundTimeout([undefined, undefined, undefined], 30_000)).toBe(COLD_MS);
    expect(roundTimeout([undefined, undefined, undefined], 2_000)).toBe(500);
  });

  it('is what the slowest node needs, so a healthy far node is never cut off', () => {
    const near = measured(...Array.from({ length: 50 }, () => 1));
    const far = measured(...Array.from({ length: 50 }, () => 180));
    const t = roundTimeout([near, near, far], 10_000);
    expect(t).toBeGreaterThanOrEqual(360);
    expect(t).toBeLessThan(COLD_MS);
  });

  it('counts a node never measured as cold even when the others are near', () => {
    const near = measured(...Array.from({ length: 50 }, () => 1));
    expect(roundTimeout([near, near, undefined], 30_000)).toBe(COLD_MS);
    expect(roundTimeout([near, near, near], 30_000)).toBe(FLOOR_MS);
  });

  it('never exceeds a quarter of the ttl, however slow the nodes', () => {
    const slow = measured(...Array.from({ length: 50 }, () => 900));
    expect(roundTimeout([slow], 2_000)).toBe(500);
  });

  it('is a whole number of ms', () => {
    const odd = measured(33.3, 41.7, 29.9);
    expect(Number.isInteger(roundTimeout([odd], 30_000))).toBe(true);
  });
});

describe('recordRtt / defaultNodeTimeout', () => {
  it('keeps one estimate per node object', () => {
    const a = {};
    const b = {};
    for (let i = 0; i < 50; i++) recordRtt(a, 150);
    expect(rttOf(a)?.samples).toBe(50);
    expect(rttOf(b)).toBeUndefined();
    expect(defaultNodeTimeout([a], 10_000)).toBeGreaterThanOrEqual(300);
    expect(defaultNodeTimeout([a, b], 30_000)).toBe(COLD_MS);
    expect(defaultNodeTimeout([a], 1_000)).toBe(250);
  });
});
