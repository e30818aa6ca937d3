// `npm run soak -- --minutes 10 [--workers 2]`: runs the simulation soak
// (test/sim/soak.ts) in parallel vitest workers for the given time, merges
// their reports and prints the summary table: runs, faults injected by kind,
// I1–I5 violations inside the assumptions, canary detections. Exits non-zero
// on any violation, problem or missed canary, after printing how to replay it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: process.env.SOAK_MINUTES ?? '10' },
    workers: { type: 'string', default: String(Math.min(2, availableParallelism())) },
  },
});
const minutes = Number(values.minutes);
const workers = Number(values.workers);
if (!(minutes > 0) || !(Number.isInteger(workers) && workers > 0)) {
  console.error('usage: npm run soak -- [--minutes M (> 0, default 10)] [--workers W]');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'quorumlock-soak-'));
const vitest = new URL('../../node_modules/vitest/vitest.mjs', import.meta.url);
console.log(`soak: ${minutes} min on ${workers} worker(s)`);
const codes = await Promise.all(
  Array.from({ length: workers }, (_, i) => {
    const child = spawn(
      process.execPath,
      [vitest.pathname, 'run', '--config', 'vitest.soak.config.ts', '--reporter', 'dot'],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: {
          ...process.env,
          SOAK_MINUTES: String(minutes),
          SOAK_WORKER: String(i),
          SOAK_REPORT: join(dir, `worker-${i}.json`),
        },
      },
    );
    return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }),
);

const reports = [];
for (let i = 0; i < workers; i++) {
  try {
    reports.push(JSON.parse(readFileSync(join(dir, `worker-${i}.json`), 'utf8')));
  } catch {
    console.error(`worker ${i} wrote no report (exit ${codes[i]})`);
  }
}
rmSync(dir, { recursive: true, force: true });

const families = {};
const faults = {};
const failures = [];
let events = 0;
let elapsed = 0;
for (const r of reports) {
  events += r.events;
  elapsed = Math.max(elapsed, r.elapsedMs);
  failures.push(...r.failures);
  for (const [k, n] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + n;
  for (const [name, f] of Object.entries(r.families)) {
    families[name] ??= {
      runs: 0,
      violations: { I1: 0, I2: 0, I3: 0, I4: 0, I5: 0, I6: 0 },
      problems: 0,
      detected: f.detected === undefined ? undefined : 0,
    };
    const into = families[name];
    into.runs += f.runs;
    into.problems += f.problems;
    for (const inv of Object.keys(into.violations)) into.violations[inv] += f.violations[inv];
    if (f.detected !== undefined) into.detected += f.detected;
  }
}

const pad = (s, n) => String(s).padEnd(n);
const num = (s, n) => String(s).padStart(n);
const line = (cells) => cells.join('  ');
const inv = ['I1', 'I2', 'I3', 'I4', 'I5', 'I6'];
console.log('');
console.log(
  `quorumlock simulation soak: ${(elapsed / 60_000).toFixed(1)} min, ${workers} worker(s), ${events.toLocaleString('en')} simulated events`,
);
console.log('');
console.log(
  line([
    pad('runs inside the assumptions', 28),
    num('runs', 7),
    ...inv.map((i) => num(i, 4)),
    num('problems', 8),
  ]),
);
let total = 0;
let bad = 0;
for (const [name, f] of Object.entries(families)) {
  if (f.detected !== undefined) continue;
  total += f.runs;
  bad += inv.reduce((s, i) => s + f.violations[i], 0) + f.problems;
  console.log(
    line([
      pad(name, 28),
      num(f.runs, 7),
      ...inv.map((i) => num(f.violations[i], 4)),
      num(f.problems, 8),
    ]),
  );
}
console.log(line([pad('total', 28), num(total, 7)]));
console.log('');
console.log(
  line([
    pad('canaries (assumption broken)', 28),
    num('runs', 7),
    num('I1 fired', 9),
    num('I2', 4),
    num('I3', 4),
    num('problems', 8),
  ]),
);
let missed = 0;
for (const [name, f] of Object.entries(families)) {
  if (f.detected === undefined) continue;
  missed += f.runs - f.detected;
  console.log(
    line([
      pad(name.replace('canary: ', ''), 28),
      num(f.runs, 7),
      num(`${f.detected}/${f.runs}`, 9),
      num(f.violations.I2, 4),
      num(f.violations.I3, 4),
      num(f.problems, 8),
    ]),
  );
}
console.log('');
console.log(line([pad('faults injected', 28), num('count', 7)]));
for (const [kind, n] of Object.entries(faults).sort((a, b) => b[1] - a[1])) {
  console.log(line([pad(kind, 28), num(n, 7)]));
}
if (failures.length > 0) {
  console.log('');
  console.log('failures (replay each with the command shown):');
  for (const f of failures) {
    console.log(`- ${f.family}: ${f.replay}`);
    console.log(`  ${f.error.slice(0, 4000)}`);
  }
}
const ok = reports.length === workers && bad === 0 && missed === 0 && failures.length === 0;
console.log('');
console.log(
  ok ? 'soak: no violation inside the assumptions, every canary detected' : 'soak: FAILED',
);
process.exit(ok ? 0 : 1);
