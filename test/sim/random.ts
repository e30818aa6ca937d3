/**
 * A small seeded PRNG for the simulation, so that a run is a pure function of
 * its schedule: link jitter, the library's backoff jitter (Math.random) and
 * workload choices all come from seeds that fast-check generated.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';

/** A deterministic source of uniform numbers in [0, 1). */
export interface Random {
  /** The next uniform number in [0, 1). */
  next(): number;
  /** A uniform number in [min, max). */
  between(min: number, max: number): number;
  /** A uniform integer in [0, n). */
  int(n: number): number;
}

/** mulberry32: tiny, fast, and good enough for jitter; the same seed gives the same stream. */
export function seeded(seed: number): Random {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    between: (min, max) => min + (max - min) * next(),
    int: (n) => Math.floor(next() * n),
  };
}

/**
 * Runs `fn` with Math.random replaced by `random`, restoring it afterwards,
 * so the library's full-jitter backoff is part of the replayable schedule.
 */
export async function withMathRandom<T>(random: Random, fn: () => Promise<T>): Promise<T> {
  const original = Math.random;
  Math.random = random.next;
  try {
    return await fn();
  } finally {
    Math.random = original;
  }
}

const require = createRequire(import.meta.url);
const crypto = require('node:crypto') as { randomBytes: (size: number) => Buffer };

/**
 * Runs `fn` with crypto.randomBytes (instance ids, value prefixes, hence
 * waiter members and the order of equal tickets) drawn from `random`,
 * restoring it afterwards, so that a run replays exactly.
 */
export async function withRandomBytes<T>(random: Random, fn: () => Promise<T>): Promise<T> {
  const original = crypto.randomBytes;
  crypto.randomBytes = (size: number) => {
    const b = Buffer.alloc(size);
    for (let i = 0; i < size; i++) b[i] = random.int(256);
    return b;
  };
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    crypto.randomBytes = original;
    syncBuiltinESMExports();
  }
}
