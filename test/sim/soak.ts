/**
 * The long run of the simulation: the same properties as the default suite,
 * with fresh seeds, for as long as asked. Started by test/sim/soak.mjs
 * (`npm run soak -- --minutes 30`) through vitest.soak.config.ts; each worker
 * writes a JSON report that soak.mjs merges into the summary table.
 *
 * Environment: SOAK_MINUTES (duration), SOAK_REPORT (report path),
 * SOAK_WORKER (index, mixed into the seeds).
 */
import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { countByInvariant, type Invariant } from './checker.js';
import {
  fenceDisorder,
  mostAtOnce,
  type PermitScenario,
  permitScenario,
  runPermits,
  writerOverlaps,
} from './permit-world.js';
import {
  CANARIES,
  type CanaryKind,
  canaryScenario,
  fenceScenario,
  handoffScenario,
  livenessScenario,
  minorityStallScenario,
  queueScenario,
  safeScenario,
} from './schedule.js';
import { runScenario, type Scenario } from './world.js';

/** The families of runs and the test that replays each one's counterexamples. */
const FAMILIES = [
  { name: 'safe', weight: 4, arb: safeScenario(), replay: 'safety.test.ts -t "never lets two"' },
  {
    name: 'safe, 5 nodes, 6 clients',
    weight: 1,
    arb: safeScenario({ nodes: [5], maxClients: 6, maxOps: 3 }),
    replay: 'safety.test.ts -t "many clients"',
  },
  {
    name: 'handoff',
    weight: 2,
    arb: handoffScenario(),
    replay: 'safety.test.ts -t "edge of validity"',
  },
  {
    name: 'liveness',
    weight: 1,
    minorityFaults: true,
    arb: livenessScenario(),
    replay: 'liveness.test.ts -t "whatever happens"',
  },
  {
    name: 'minority stall',
    weight: 1,
    minorityFaults: true,
    arb: minorityStallScenario(),
    replay: 'liveness.test.ts -t "in the middle of a round"',
  },
  {
    name: 'queue (fair waiting)',
    weight: 1,
    arb: queueScenario(),
    replay: 'queue.test.ts -t "first come"',
  },
  {
    name: 'fence (lost, expired)',
    weight: 1,
    arb: fenceScenario(),
    replay: 'queue.test.ts -t "each holder gets a token"',
  },
  ...CANARIES.map((kind) => ({
    name: `canary: ${kind}`,
    weight: 1,
    arb: canaryScenario(kind),
    replay: `canary.test.ts -t "${kind}"`,
    canary: kind as CanaryKind,
  })),
] as const;

/**
 * Semaphores and read-write locks (test/sim/permit-world.ts). In the table, a
 * semaphore held by more than `limit` holders, or a writer held beside anyone,
 * counts under I1 (exclusion); a writer's token out of order under I2.
 */
const PERMIT_FAMILIES = [
  {
    name: 'semaphore',
    weight: 1,
    permits: 'semaphore',
    arb: permitScenario(['permit']),
    replay: 'permits.test.ts -t "never has more than limit"',
  },
  {
    name: 'read-write lock',
    weight: 1,
    permits: 'rwlock',
    arb: permitScenario(['read', 'read', 'write']),
    replay: 'permits.test.ts -t "never has a writer"',
  },
] as const;

type Family = (typeof FAMILIES)[number] | (typeof PERMIT_FAMILIES)[number];
const ALL: readonly Family[] = [...FAMILIES, ...PERMIT_FAMILIES];

/** Per family: runs, and violations by invariant (for canaries, I1 counts detections). */
interface FamilyReport {
  runs: number;
  violations: Record<Invariant, number>;
  problems: number;
  /** Canaries only: runs where I1 fired while I2 and I3 held. */
  detected?: number;
}

/** What one worker writes for soak.mjs. */
interface SoakReport {
  minutes: number;
  elapsedMs: number;
  families: Record<string, FamilyReport>;
  faults: Record<string, number>;
  events: number;
  failures: Array<{ family: string; seed: number; path: string; replay: string; error: string }>;
}

it('soaks the simulation', async () => {
  const minutes = Number(process.env.SOAK_MINUTES ?? '1');
  const worker = Number(process.env.SOAK_WORKER ?? '0');
  const reportPath = process.env.SOAK_REPORT;
  const started = performance.now();
  const deadline = started + minutes * 60_000;
  const report: SoakReport = {
    minutes,
    elapsedMs: 0,
    families: {},
    faults: {},
    events: 0,
    failures: [],
  };
  const save = () => {
    report.elapsedMs = performance.now() - started;
    if (reportPath) writeFileSync(reportPath, JSON.stringify(report, null, 1));
  };
  const totalWeight = ALL.reduce((s, f) => s + f.weight, 0);
  let chunk = 0;
  let lastProgress = started;

  while (performance.now() < deadline) {
    // A weighted round-robin over the families, chunk by chunk.
    let pick = chunk % totalWeight;
    let family: Family = ALL[0]!;
    for (const f of ALL) {
      family = f;
      pick -= f.weight;
      if (pick < 0) break;
    }
    chunk++;
    report.families[family.name] ??= {
      runs: 0,
      violations: { I1: 0, I2: 0, I3: 0, I4: 0, I5: 0, I6: 0 },
      problems: 0,
      ...('canary' in family ? { detected: 0 } : {}),
    };
    const fr = report.families[family.name]!;
    const seed = (Date.now() ^ (worker * 0x9e3779b9) ^ (chunk * 0x85ebca6b)) | 0;
    // Counting stops at the first failure of a chunk: shrinking re-runs variants of it.
    let failed = false;
    const checkPermits = async (kind: 'semaphore' | 'rwlock', s: PermitScenario) => {
      const { held, events } = await runPermits(s);
      const over = kind === 'semaphore' && mostAtOnce(held) > s.limit ? 1 : 0;
      const beside = kind === 'rwlock' ? writerOverlaps(held).length : 0;
      const disorder = kind === 'rwlock' ? fenceDisorder(held).length : 0;
      const ok = over + beside + disorder === 0;
      if (!failed) {
        fr.runs++;
        report.events += events;
        const faults: Record<string, number> = {
          'node pause': s.pauses.length,
          'crash (data lost)': s.restarts?.length ?? 0,
        };
        for (const [kind, n] of Object.entries(faults)) {
          report.faults[`${kind} (permits)`] = (report.faults[`${kind} (permits)`] ?? 0) + n;
        }
        fr.violations.I1 += over + beside;
        fr.violations.I2 += disorder;
        if (!ok) failed = true;
      }
      return ok;
    };
    const property: fc.IAsyncProperty<[PermitScenario] | [Scenario]> = (
      'permits' in family
        ? fc.asyncProperty(family.arb, (s: PermitScenario) => checkPermits(family.permits, s))
        : worldProperty(family)
    ) as fc.IAsyncProperty<[PermitScenario] | [Scenario]>;
    const result = await fc.check(property, {
      numRuns: 20,
      seed,
      interruptAfterTimeLimit: 5 * 60_000,
    });
    function worldProperty(family: (typeof FAMILIES)[number]) {
      return fc.asyncProperty(family.arb, async (s: Scenario) => {
        const r = await runScenario(s);
        const c = countByInvariant(r.violations);
        let ok: boolean;
        if ('canary' in family) {
          ok = c.I1 > 0 && c.I2 === 0 && c.I3 === 0 && r.problems.length === 0;
        } else {
          // Minority faults are unconstrained: fencing order (I2, I3) is the
          // safety families' business there, as in liveness.test.ts.
          const counted =
            'minorityFaults' in family
              ? r.violations.filter((v) => v.invariant !== 'I2' && v.invariant !== 'I3')
              : r.violations;
          ok = counted.length === 0 && r.problems.length === 0;
        }
        if (!failed) {
          fr.runs++;
          report.events += r.stats.events;
          for (const [kind, n] of Object.entries(r.stats.faults)) {
            // Canaries break assumptions, liveness runs fault only a minority: say so in the table.
            const label =
              'canary' in family
                ? `${kind} (canary)`
                : 'minorityFaults' in family
                  ? `${kind} (minority)`
                  : kind;
            report.faults[label] = (report.faults[label] ?? 0) + n;
          }
          for (const inv of Object.keys(c) as Invariant[]) {
            // A canary's I1 is its detection, not a violation.
            if ('canary' in family && inv === 'I1') continue;
            if ('minorityFaults' in family && (inv === 'I2' || inv === 'I3')) continue;
            fr.violations[inv] += c[inv];
          }
          fr.problems += r.problems.length;
          if ('canary' in family && ok) fr.detected! += 1;
          if (!ok) failed = true;
        }
        return ok;
      });
    }
    if (result.failed) {
      const error =
        result.counterexample === null
          ? String(result.errorInstance)
          : `counterexample: ${JSON.stringify(result.counterexample[0])}`;
      report.failures.push({
        family: family.name,
        seed: result.seed,
        path: result.counterexamplePath ?? '',
        replay: `SIM_SEED=${result.seed} SIM_PATH=${result.counterexamplePath ?? ''} npx vitest run test/sim/${family.replay}`,
        error,
      });
    }
    if (performance.now() - lastProgress > 60_000) {
      lastProgress = performance.now();
      const runs = Object.values(report.families).reduce((s, f) => s + f.runs, 0);
      process.stderr.write(
        `soak worker ${worker}: ${((lastProgress - started) / 60_000).toFixed(1)} min, ${runs} runs, ${report.failures.length} failures\n`,
      );
      save();
    }
  }
  save();
  expect(report.failures).toEqual([]);
}, 0);
