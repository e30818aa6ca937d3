/**
 * Connections for tests on an ensemble: waiting until a Redlock has a working
 * connection to every node, so that a test's measured or counted rounds never
 * wait for a node still connecting (or decide without it); plain clients to
 * every node.
 */
import type { Redis } from 'ioredis';
import { expect, vi } from 'vitest';
import type { Redlock } from '../../src/index.js';
import type { Ensemble } from './ensemble.js';

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

/**
 * A plain client straight to each node of `ensemble`, in node order, for
 * reading and planting keys; each reconnects by itself after a restart. The
 * caller disconnects them.
 */
export function nodeClients(ensemble: Ensemble): Redis[] {
  return ensemble.nodes.map((n) => {
    const c = n.client();
    c.on('error', () => {});
    return c;
  });
}
