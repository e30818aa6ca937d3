/**
 * Semaphores and read-write locks in the simulation (test/sim/permit-world.ts):
 * the checkers assert that no more than `limit` permits of a semaphore are
 * held at once, that a writer is never held beside anyone, that a writer's
 * token is above every token acquired before it, and, with the assumptions
 * broken on purpose, that the checker fires.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  fenceDisorder,
  mostAtOnce,
  type Op,
  permitScenario,
  runPermits,
  writerOverlaps,
} from './permit-world.js';
import { simParameters } from './replay.js';

describe('permits in the simulation, inside the assumptions (delays, pauses, late answers, clock rates)', () => {
  it('never has more than limit permits of a semaphore held at once', async () => {
    await fc.assert(
      fc.asyncProperty(permitScenario(['permit']), async (s) => {
        const { held } = await runPermits(s);
        expect(mostAtOnce(held), JSON.stringify(s)).toBeLessThanOrEqual(s.limit);
      }),
      simParameters(40),
    );
  }, 120_000);

  it('never has a writer beside anyone, and orders writer tokens against every permit', async () => {
    await fc.assert(
      fc.asyncProperty(permitScenario(['read', 'read', 'write']), async (s) => {
        const { held } = await runPermits(s);
        expect(writerOverlaps(held), JSON.stringify(s)).toEqual([]);
        expect(fenceDisorder(held), JSON.stringify(s)).toEqual([]);
      }),
      simParameters(40),
    );
  }, 120_000);
});

describe('permits in the simulation, with the assumptions broken (canary)', () => {
  it('lets two holders of a one-permit semaphore overlap when a majority of nodes loses its data', async () => {
    const hold: Op = { kind: 'permit', wait: 0, hold: 400, think: 0 };
    const late: Op = { kind: 'permit', wait: 2_000, hold: 100, think: 0 };
    const { held } = await runPermits({
      seed: 7,
      nodes: 3,
      limit: 1,
      ttl: 1_000,
      nodeTimeout: 20,
      rates: [1, 1, 1],
      maxDelay: 2,
      inOrder: true,
      pauses: [],
      // The second client reads another primitive first, so it asks for the permit after the wipe.
      clients: [[hold], [{ kind: 'read', wait: 0, hold: 0, think: 150 }, late]],
      wipeAt: 100,
    });
    expect(mostAtOnce(held)).toBe(2);
  });
});
