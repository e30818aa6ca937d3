import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { explain, simParameters } from './replay.js';
import { handoffScenario, safeScenario } from './schedule.js';
import { runScenario } from './world.js';

describe('inside the safety assumptions (node faults, partitions, pauses, bounded clock error)', () => {
  it('never lets two clients hold a lock at once, keeps tokens growing and leaves no key of a failed round behind', async () => {
    await fc.assert(
      fc.asyncProperty(safeScenario(), async (s) => {
        const r = await runScenario(s);
        expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
      }),
      simParameters(300),
    );
  }, 300_000);

  it('holds with many clients contending for one resource on five nodes', async () => {
    await fc.assert(
      fc.asyncProperty(safeScenario({ nodes: [5], maxClients: 6, maxOps: 3 }), async (s) => {
        const r = await runScenario(s);
        expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
      }),
      simParameters(80),
    );
  }, 300_000);

  it('hands the lock over at the edge of validity without overlap, after extends and abandoned holds', async () => {
    await fc.assert(
      fc.asyncProperty(handoffScenario(), async (s) => {
        const r = await runScenario(s);
        expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
      }),
      simParameters(60),
    );
  }, 300_000);
});
