/**
 * Waiting until a Redlock has a working connection to every node, so that a
 * test's measured or counted rounds never wait for a node still connecting
 * (or decide without it).
 */
import { expect, vi } from 'vitest';
import type { Redlock } from '../../src/index.js';

/** Resolves with `redlock` once `inspect` gets an answer from every node (within `timeoutMs`). */
export async function connected(redlock: Redlock, timeoutMs = 10_000): Promise<Redlock> {
  await vi.waitFor(
    async () => {
      const state = await redlock.inspect('warm-up');
      expect(state.nodes.filter((n) => n.error !== undefined)).toEqual([]);
    },
    { timeout: timeoutMs, interval: 20 },
  );
  return redlock;
}
