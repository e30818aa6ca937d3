/**
 * How simulation properties are run and replayed. fast-check prints the seed
 * and shrink path of a failure; set them in the environment to replay exactly
 * that counterexample:
 *
 *   SIM_SEED=<seed> SIM_PATH=<path> npx vitest run test/sim/safety.test.ts
 *
 * SIM_RUNS overrides the number of runs of every property in the file, and
 * SIM_TIME_LIMIT (ms, default 120 000) bounds a property's runs and shrinking.
 */
import type fc from 'fast-check';
import type { RunResult, Scenario } from './world.js';

/** fast-check parameters for a property, honouring SIM_SEED, SIM_PATH and SIM_RUNS. */
export function simParameters<T>(defaultRuns: number): fc.Parameters<T> {
  const seed = process.env.SIM_SEED;
  const path = process.env.SIM_PATH;
  const runs = process.env.SIM_RUNS;
  return {
    numRuns: runs ? Number(runs) : defaultRuns,
    ...(seed ? { seed: Number(seed) } : {}),
    ...(path ? { path } : {}),
    // Shrinking re-runs whole simulations: stop it (keeping the smallest
    // counterexample so far) well before the test's own timeout.
    interruptAfterTimeLimit: Number(process.env.SIM_TIME_LIMIT ?? 120_000),
    markInterruptAsFailure: false,
  };
}

/** A readable account of what went wrong in a run, for assertion messages. */
export function explain(s: Scenario, r: RunResult): string {
  return [
    ...r.violations.map((v) => `${v.invariant}: ${v.message}`),
    ...r.problems.map((p) => `problem: ${p}`),
    `scenario: ${JSON.stringify(s)}`,
  ].join('\n');
}
