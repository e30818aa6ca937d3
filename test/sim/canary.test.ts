import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countByInvariant } from './checker.js';
import { explain, simParameters } from './replay.js';
import { CANARIES, canaryScenario } from './schedule.js';
import { runScenario } from './world.js';

// Each canary breaks one safety assumption on purpose. Mutual exclusion is
// then lost and the checker must say so; fencing needs none of these
// assumptions, so tokens must still grow and the store must refuse stale ones.
describe('canaries: runs outside the assumptions', () => {
  const because: Record<(typeof CANARIES)[number], string> = {
    pause: 'a client stalls past its validity between its check and its write',
    'clock-jump': 'two node clocks jump forward further than the drift allowance',
    'crash-restart': 'a node loses its data and restarts at once',
    'clock-rate': "the holder's clock runs slower than driftFactor allows",
  };
  for (const kind of CANARIES) {
    it(`${kind}: detects the overlap when ${because[kind]}, while fencing still holds`, async () => {
      await fc.assert(
        fc.asyncProperty(canaryScenario(kind), async (s) => {
          const r = await runScenario(s);
          const c = countByInvariant(r.violations);
          expect(r.problems, explain(s, r)).toEqual([]);
          expect(c.I1, explain(s, r)).toBeGreaterThan(0);
          expect({ I2: c.I2, I3: c.I3 }, explain(s, r)).toEqual({ I2: 0, I3: 0 });
          // The stale holder's late writes were offered to the store and refused.
          if (kind !== 'clock-rate') {
            expect(
              r.history.writes.some((w) => !w.accepted || w.acquisition.startsWith('c1')),
            ).toBe(true);
          }
        }),
        simParameters(50),
      );
    }, 120_000);
  }
});
