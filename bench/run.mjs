#!/usr/bin/env node
// quorumlock benchmarks: latency, throughput and contention against the other
// Node Redlock clients, one run, one report.
//
//   node bench/run.mjs [--quick] [--nodes URL,...] [--out DIR] [--scenarios 1,2,3,4,5,6,7]
//                      [--contenders id,...] [--reps N] [--report FILE]
//
// Scenarios: 1 sequential, 2 concurrent, 3 contended, 4 degraded, 5 multi-region,
// 6 memory, 7 arrival order. After the scenarios, every node is scanned for keys
// of this run without an expiry. Markdown tables go to stdout, progress to
// stderr, JSON + HTML to bench/results/ (or --out). Without --nodes it starts 5
// redis-server masters.
// Exit codes: 0 done, 64 usage error, 69 a given node cannot be reached, 1 other failure.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { allContenders, loadQuorumlock } from './contenders.mjs';
import { DelayProxies } from './delay-proxy.mjs';
import {
  installExitHooks,
  killAll,
  nodeLabel,
  nodeUrl,
  parseNode,
  startEnsemble,
  unreachableNodes,
} from './ensemble.mjs';
import { Progress } from './progress.mjs';
import { buildReport } from './report.mjs';
import {
  commandCalls,
  concurrent,
  contended,
  fairOrder,
  leftoverKeys,
  pingRtt,
  sequential,
  warmPair,
} from './scenarios.mjs';
import { curve, encode, mergeInto, newHistogram } from './stats.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));

const USAGE = `usage: node bench/run.mjs [options]
  --quick              smoke run (1 repetition, short windows; under a minute)
  --nodes URL,...      use these Redis masters instead of starting 5 (redis://host:port)
  --out DIR            where results JSON + HTML go (default bench/results)
  --scenarios LIST     subset of 1,2,3,4,5,6,7 (1 sequential, 2 concurrent, 3 contended,
                       4 degraded, 5 multi-region, 6 memory, 7 arrival order); default all
  --contenders LIST    subset of contender ids (see the report); default all
  --reps N             repetitions per scenario (default 3, --quick 1)
  --report FILE        re-render the tables and HTML of a saved results JSON; runs nothing
  -h, --help           this text
exit codes: 0 done, 64 usage error, 69 a --nodes node cannot be reached, 1 other failure`;

/** Exit code of a usage error (sysexits EX_USAGE), as the quorumlock CLI uses. */
const EX_USAGE = 64;
/** Exit code when a given node cannot be reached (sysexits EX_UNAVAILABLE). */
const EX_UNAVAILABLE = 69;

/** Prints one line on stderr and exits: errors a user can fix need no stack trace. */
function fail(message, code) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(code);
}
const usageError = (message) => fail(`${message} (see --help)`, EX_USAGE);

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      nodes: { type: 'string' },
      out: { type: 'string' },
      scenarios: { type: 'string' },
      contenders: { type: 'string' },
      reps: { type: 'string' },
      report: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  // parseArgs explains the problem in its first sentence; the rest is advice about `--`.
  usageError(String(err?.message ?? err).split('. ')[0]);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

if (args.report) {
  const saved = JSON.parse(readFileSync(args.report, 'utf8'));
  const rendered = buildReport(saved);
  writeFileSync(args.report.replace(/\.json$/, '.html'), rendered.html);
  process.stdout.write(rendered.markdown);
  process.exit(0);
}

const quick = args.quick;
/** Window lengths in ms, sized so a full run takes about 12 minutes and --quick about one (on a shared 2-core machine: 15 and 1.5). */
const plan = quick
  ? {
      reps: 1,
      seq: { durationMs: 300, warmupMs: 100, sameKeyMs: 150 },
      conc: { durationMs: 500, warmupMs: 150, loops: 64 },
      cont: { durationMs: 1000, clients: 16, holdMs: 1, warmPairs: 5 },
      degr: { durationMs: 200, warmupMs: 50, settleMs: 50, capMs: 500 },
      multi: { durationMs: 400, warmupPairs: 1 },
      memory: { pairs: 10_000, concurrency: 16 },
      order: { trials: 3, waiters: 4, spacingMs: 40, holdMs: 5 },
    }
  : {
      reps: 3,
      seq: { durationMs: 3000, warmupMs: 300, sameKeyMs: 1000 },
      conc: { durationMs: 3000, warmupMs: 500, loops: 64 },
      cont: { durationMs: 5000, clients: 16, holdMs: 1, warmPairs: 20 },
      degr: { durationMs: 1500, warmupMs: 300, settleMs: 100, capMs: 1000 },
      multi: { durationMs: 1200, warmupPairs: 2 },
      memory: { pairs: 100_000, concurrency: 16 },
      order: { trials: 5, waiters: 4, spacingMs: 40, holdMs: 5 },
    };
if (args.reps !== undefined) {
  if (!/^[1-9]\d*$/.test(args.reps))
    usageError(`--reps wants a positive integer, got '${args.reps}'`);
  plan.reps = Number(args.reps);
}

/** Lock ttl for every contender in every scenario but the multi-region ttl variants (ms). */
const TTL = 10_000;
/**
 * The multi-region variants: added round trips per node (ms, cycled over N)
 * and the lock ttl. quorumlock runs with its default options: no nodeTimeout,
 * so it learns each node's deadline from the round trips it measures.
 */
const REGION_VARIANTS = [
  // The first is the scenario of earlier runs; every contender runs it.
  { id: 'mixed-10s', label: 'mixed, ttl 10 s', rtts: [1, 1, 20, 60, 120], ttl: 10_000 },
  { id: 'mixed-2s', label: 'mixed, ttl 2 s', rtts: [1, 1, 20, 60, 120], ttl: 2000 },
  { id: 'far-2s', label: 'far, ttl 2 s', rtts: [70, 100, 130, 160, 200], ttl: 2000 },
  { id: 'far-10s', label: 'far, ttl 10 s', rtts: [70, 100, 130, 160, 200], ttl: 10_000 },
];
/**
 * Contenders of the other multi-region variants: the quorum clients and the
 * majority floor (the 1-node reference shows one node's round trip, the
 * all-replies floor the slowest node's, as in the first variant); --quick
 * keeps quorumlock (fencing on) and the majority floor only, to stay within
 * about a minute.
 */
const regionContenders = (v, list) =>
  v === REGION_VARIANTS[0]
    ? list
    : list.filter((c) =>
        quick
          ? ['quorumlock', 'floor-majority'].includes(c.id)
          : c.kind === 'quorumlock' || c.kind === 'library' || c.id === 'floor-majority',
      );
/** Added round trip of the slow node in the degraded scenario (ms). */
const SLOW_RTT = 50;

const ALL_SCENARIOS = ['1', '2', '3', '4', '5', '6', '7'];
const ALIASES = { memory: '6', mem: '6', order: '7', fifo: '7' };
const scenarioIds = new Set(
  (args.scenarios ?? ALL_SCENARIOS.join(','))
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .map((s) => ALIASES[s] ?? s),
);
for (const s of scenarioIds) {
  if (!ALL_SCENARIOS.includes(s)) {
    usageError(`unknown scenario '${s}'; known: ${ALL_SCENARIOS.join(',')}`);
  }
}

let contenders = allContenders();
if (args.contenders) {
  const want = new Set(args.contenders.split(',').map((s) => s.trim()));
  const unknown = [...want].filter((id) => !contenders.some((c) => c.id === id));
  if (unknown.length) {
    usageError(
      `unknown contender(s) ${unknown.join(', ')}; known: ${contenders.map((c) => c.id).join(', ')}`,
    );
  }
  contenders = contenders.filter((c) => want.has(c.id));
}
/** The --nodes list, parsed; null when the bench starts its own. */
let givenNodes = null;
if (args.nodes !== undefined) {
  const specs = args.nodes
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (specs.length === 0) usageError('--nodes wants a comma-separated list of redis://host:port');
  givenNodes = specs.map((spec) => {
    try {
      const node = parseNode(spec);
      if (!Number.isInteger(node.port) || node.port < 1 || node.port > 65535) throw new Error();
      return node;
    } catch {
      return usageError(`--nodes: '${spec}' is not redis://[user:pass@]host:port`);
    }
  });
  // Fail before any scenario starts: a dead node would otherwise stall the first
  // default-configured client for minutes.
  const down = await unreachableNodes(givenNodes);
  if (down.length) {
    fail(
      `cannot reach ${down.map((d) => `${nodeLabel(d.node)} (${d.reason})`).join(', ')}; check --nodes`,
      EX_UNAVAILABLE,
    );
  }
}

const usesQuorumlock = contenders.some((c) => c.kind === 'quorumlock') || scenarioIds.has('6');
if (usesQuorumlock) {
  try {
    await loadQuorumlock();
  } catch (err) {
    fail(err.message, 1);
  }
}

installExitHooks();

function machine() {
  const safe = (cmd, argv) => {
    try {
      return execFileSync(cmd, argv, {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    } catch {
      return null;
    }
  };
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    redis: (() => {
      const v = safe('redis-server', ['--version'])?.match(/v=(\S+)/)?.[1];
      return v ? `redis-server ${v}` : null;
    })(),
    commit: safe('git', ['-C', benchDir, 'rev-parse', '--short', 'HEAD']),
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

const auth = (n) => ({
  ...(n.password ? { password: n.password } : {}),
  ...(n.username ? { username: n.username } : {}),
});
const rotate = (list, by) => list.map((_, i) => list[(i + by) % list.length]);
const runId = randomBytes(3).toString('hex');
const prefix = `bench:${runId}:`;

// ---- the plan of steps, for the progress line ----------------------------------

const contending = contenders.filter((c) => c.contends);
const stepCount =
  plan.reps *
    ((scenarioIds.has('1') ? contenders.length : 0) +
      (scenarioIds.has('2') ? contenders.length : 0) +
      (scenarioIds.has('3') ? contending.length : 0) +
      (scenarioIds.has('4') ? contenders.length * 3 : 0) +
      (scenarioIds.has('5')
        ? REGION_VARIANTS.reduce((sum, v) => sum + regionContenders(v, contenders).length, 0)
        : 0)) +
  (scenarioIds.has('6') ? 1 : 0) +
  (scenarioIds.has('7') ? contending.length : 0) +
  1;
const progress = new Progress(stepCount);

// ---- nodes -------------------------------------------------------------------

let nodes;
if (givenNodes) {
  nodes = givenNodes;
  progress.note(`using ${nodes.length} given nodes: ${nodes.map(nodeLabel).join(', ')}`);
} else {
  progress.note('starting 5 redis-server masters');
  nodes = await startEnsemble(5, (m) => progress.note(m));
  progress.note(`redis-server on ports ${nodes.map((n) => n.port).join(', ')}`);
}
const N = nodes.length;
const majority = Math.floor(N / 2) + 1;
const cycled = (list) => Array.from({ length: N }, (_, i) => list[i % list.length]);

// Admin connections: command counts (scenarios 1 and 3) and the final key scan.
const admins = nodes.map((n) => new Redis({ host: n.host, port: n.port, ...auth(n) }));
for (const a of admins) a.on('error', () => {});

let proxies = null;
let proxied = null;
if (scenarioIds.has('4') || scenarioIds.has('5')) {
  proxies = await DelayProxies.start();
  proxied = [];
  for (const node of nodes) {
    const p = await proxies.add(node, 0);
    proxied.push({ ...node, host: p.host, port: p.port, proxyId: p.id });
  }
}

// ---- running ---------------------------------------------------------------------

/** results.scenarios[name].runs[contenderId] = [per-repetition result] */
const results = {
  meta: {
    date: new Date().toISOString(),
    command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    quick,
    machine: machine(),
    nodes: N,
    nodesGiven: givenNodes !== null,
    ttlMs: TTL,
    plan,
    slowRttMs: SLOW_RTT,
  },
  contenders: contenders.map(({ id, label, kind, version, settings, contends, lockCommands }) => ({
    id,
    label,
    kind,
    version,
    settings,
    contends,
    lockCommands: lockCommands ?? ['evalsha', 'eval'],
  })),
  scenarios: {},
};

/** Runs `fn(contender, rep)` for every repetition, contenders interleaved in rotating order. */
const timings = {};
const scenarioStart = () => performance.now();
const scenarioEnd = (name, t0) => {
  timings[name] = Math.round((performance.now() - t0) / 100) / 10;
};

/** Runs `fn` for every repetition and contender; returns { contenderId: [result per repetition] }. */
async function interleaved(list, label, fn) {
  const runs = Object.fromEntries(list.map((c) => [c.id, []]));
  for (let rep = 0; rep < plan.reps; rep++) {
    for (const c of rotate(list, rep % list.length)) {
      progress.step(`${label} · rep ${rep + 1}/${plan.reps} · ${c.label}`);
      try {
        runs[c.id].push(await fn(c, rep));
      } catch (err) {
        progress.note(`${label} · ${c.label}: ${err?.message ?? err}`);
        runs[c.id].push({ failed: String(err?.message ?? err) });
      }
      progress.finish();
    }
  }
  return runs;
}

async function withInstance(c, nodesFor, fn, opts = {}) {
  const inst = await c.create({ nodes: nodesFor, ttl: TTL, contended: false, ...opts });
  try {
    return await fn(inst);
  } finally {
    await inst.close().catch(() => {});
  }
}

if (scenarioIds.has('1')) {
  const t0 = scenarioStart();
  // Bounded: a node that dies mid-run must cost a missing count, not a hung run.
  const probe = () => {
    let timer;
    return Promise.race([
      commandCalls(admins),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 5000, null);
      }),
    ])
      .catch(() => null)
      .finally(() => clearTimeout(timer));
  };
  const runs = await interleaved(contenders, '1 sequential', (c, rep) =>
    withInstance(c, nodes, async (inst) => {
      // A fresh resource per pair (per-entity locks), then a short window on one key.
      const r = await sequential(inst, {
        key: `${prefix}s1:${c.id}:${rep}`,
        fresh: true,
        ...plan.seq,
        progress,
        probe,
      });
      const same = await sequential(inst, {
        key: `${prefix}s1:${c.id}:${rep}:same`,
        durationMs: plan.seq.sameKeyMs,
        warmupMs: 0,
        progress,
      });
      r.sameKey = {
        pairs: same.pairs,
        acquire: same.acquire,
        pair: same.pair,
        stalled: same.stalled,
      };
      return r;
    }),
  );
  results.scenarios.sequential = { runs };
  scenarioEnd('sequential', t0);
}

if (scenarioIds.has('2')) {
  const t0 = scenarioStart();
  const runs = await interleaved(contenders, '2 concurrent ×64', (c, rep) =>
    withInstance(c, nodes, (inst) =>
      concurrent(inst, { keyBase: `${prefix}s2:${c.id}:${rep}`, ...plan.conc, progress }),
    ),
  );
  results.scenarios.concurrent = { runs };
  scenarioEnd('concurrent', t0);
}

if (scenarioIds.has('3')) {
  const t0 = scenarioStart();
  const runs = await interleaved(contending, '3 contended ×16', (c, rep) =>
    contended(c, {
      nodes,
      ttl: TTL,
      key: `${prefix}s3:${c.id}:${rep}`,
      ...plan.cont,
      progress,
      admins,
      // Only on nodes the bench started: a user's own nodes keep their statistics.
      resetStats: !givenNodes,
    }),
  );
  results.scenarios.contended = { runs };
  scenarioEnd('contended', t0);
}

if (scenarioIds.has('4')) {
  const t0 = scenarioStart();
  const victim = proxied[N - 1];
  const cases = [
    { name: 'baseline', apply: async () => {}, undo: async () => {} },
    {
      name: 'down',
      apply: () => proxies.down(victim.proxyId),
      undo: () => proxies.up(victim.proxyId),
    },
    {
      name: 'slow',
      apply: () => proxies.setDelay(victim.proxyId, SLOW_RTT / 2),
      undo: () => proxies.setDelay(victim.proxyId, 0),
    },
  ];
  const runs = Object.fromEntries(cases.map((k) => [k.name, {}]));
  for (const k of cases) for (const c of contenders) runs[k.name][c.id] = [];
  for (let rep = 0; rep < plan.reps; rep++) {
    for (const c of rotate(contenders, rep % contenders.length)) {
      for (const k of cases) {
        progress.step(`4 degraded ${k.name} · rep ${rep + 1}/${plan.reps} · ${c.label}`);
        try {
          const r = await withInstance(c, proxied, async (inst) => {
            // Connect and warm up healthy, then break the node: the usual way a node fails.
            await warmPair(inst, `${prefix}s4:${c.id}:warm`, plan.degr.capMs);
            await k.apply();
            try {
              await new Promise((res) => setTimeout(res, plan.degr.settleMs));
              return await sequential(inst, {
                key: `${prefix}s4:${c.id}:${k.name}:${rep}`,
                durationMs: plan.degr.durationMs,
                warmupMs: plan.degr.warmupMs,
                capMs: plan.degr.capMs,
                progress,
              });
            } finally {
              await k.undo();
            }
          });
          runs[k.name][c.id].push(r);
        } catch (err) {
          progress.note(`degraded ${k.name} · ${c.label}: ${err?.message ?? err}`);
          runs[k.name][c.id].push({ failed: String(err?.message ?? err) });
        }
        progress.finish();
      }
    }
  }
  results.scenarios.degraded = { runs, victim: nodeUrl(nodes[N - 1]) };
  scenarioEnd('degraded', t0);
}

if (scenarioIds.has('5')) {
  const t0 = scenarioStart();
  const variants = [];
  for (const v of REGION_VARIANTS) {
    const rtts = cycled(v.rtts);
    for (let i = 0; i < N; i++) await proxies.setDelay(proxied[i].proxyId, rtts[i] / 2);
    // The physical limit: a quorum needs the majority-th fastest node to answer.
    const measured = await Promise.all(proxied.map((p) => pingRtt(p, quick ? 7 : 15)));
    const limitMs = [...measured].sort((a, b) => a - b)[majority - 1];
    progress.note(
      `multi-region ${v.label}: PING round trips ${measured.map((m) => m.toFixed(1)).join(', ')} ms; majority-th fastest ${limitMs.toFixed(2)} ms`,
    );
    const runs = await interleaved(
      regionContenders(v, contenders),
      `5 multi-region ${v.label}`,
      (c, rep) =>
        withInstance(
          c,
          proxied,
          async (inst) => {
            // Per-entity locks, as in scenario 1; warm-up connects and teaches round trips.
            const key = `${prefix}s5:${c.id}:${v.id}:${rep}`;
            for (let i = 0; i < plan.multi.warmupPairs; i++) {
              await warmPair(inst, `${key}:w${i}`, 5000);
            }
            return sequential(inst, {
              key,
              fresh: true,
              durationMs: plan.multi.durationMs,
              warmupMs: 0,
              capMs: 5000,
              progress,
            });
          },
          { ttl: v.ttl },
        ),
    );
    variants.push({
      id: v.id,
      label: v.label,
      ttlMs: v.ttl,
      addedRttsMs: rtts,
      pingRttsMs: measured,
      limitMs,
      runs,
    });
  }
  for (const p of proxied) await proxies.setDelay(p.proxyId, 0);
  results.scenarios.multiRegion = { variants };
  scenarioEnd('multiRegion', t0);
}

if (scenarioIds.has('6')) {
  const t0 = scenarioStart();
  progress.step(`6 memory · ${plan.memory.pairs} pairs · quorumlock (fencing on)`);
  results.scenarios.memory = await memoryCheck();
  progress.finish();
  scenarioEnd('memory', t0);
}

if (scenarioIds.has('7')) {
  const t0 = scenarioStart();
  const o = plan.order;
  const runs = {};
  for (const c of contending) {
    progress.step(`7 arrival order · ${o.trials} trials × ${o.waiters} waiters · ${c.label}`);
    try {
      runs[c.id] = await fairOrder(c, {
        nodes,
        ttl: TTL,
        key: `${prefix}s7:${c.id}`,
        ...o,
        progress,
      });
    } catch (err) {
      progress.note(`arrival order · ${c.label}: ${err?.message ?? err}`);
      runs[c.id] = { failed: String(err?.message ?? err) };
    }
    progress.finish();
  }
  results.scenarios.order = { runs };
  scenarioEnd('order', t0);
}

// Every key this run left on every node, by contender (the id after `bench:<run>:<scenario>:`).
{
  const t0 = scenarioStart();
  progress.step('keys left on the nodes');
  // The prefix is `bench:<hex>:`: nothing in it needs escaping.
  const pattern = new RegExp(`${prefix}[^:]+:([^:{}]+)`);
  try {
    results.leftover = {
      groups: await leftoverKeys(admins, prefix, (k) => k.match(pattern)?.[1] ?? 'other'),
    };
  } catch (err) {
    results.leftover = { failed: String(err?.message ?? err) };
  }
  progress.finish();
  scenarioEnd('leftover', t0);
}

async function memoryCheck() {
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      join(benchDir, 'memory.mjs'),
      '--nodes',
      nodes.map(nodeUrl).join(','),
      '--pairs',
      String(plan.memory.pairs),
      '--concurrency',
      String(plan.memory.concurrency),
      '--ttl',
      String(TTL),
      '--prefix',
      `${prefix}mem:quorumlock:`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d.toString();
  });
  const code = await new Promise((res) => child.on('exit', res));
  if (code !== 0) return { failed: `memory check exited with ${code}` };
  return JSON.parse(out);
}

/** On given nodes, deletes every key this run left behind, expiring or not. */
async function sweep() {
  let removed = 0;
  for (const n of nodes) {
    const admin = new Redis({ host: n.host, port: n.port, ...auth(n) });
    admin.on('error', () => {});
    try {
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) removed += await admin.del(...keys);
      } while (cursor !== '0');
    } catch (err) {
      progress.note(`could not clean up ${nodeUrl(n)}: ${err.message}`);
    } finally {
      admin.disconnect();
    }
  }
  return removed;
}

progress.end();
for (const a of admins) a.disconnect();
proxies?.stop();
if (givenNodes) progress.note(`removed ${await sweep()} keys this run left on the given nodes`);
else killAll();

// ---- aggregate, report ------------------------------------------------------------

/** Replaces histograms with merged percentile curves and encoded copies, so the JSON stays plain. */
function detachHistograms() {
  const charts = {};
  const mergeRuns = (runs, metric) => {
    const out = {};
    for (const [cid, list] of Object.entries(runs)) {
      const merged = newHistogram();
      let any = false;
      for (const r of list) {
        if (r.hist?.[metric]) {
          mergeInto(merged, r.hist[metric]);
          any = true;
        }
      }
      if (any && merged.totalCount > 0)
        out[cid] = { curve: curve(merged), encoded: encode(merged) };
    }
    return out;
  };
  const s = results.scenarios;
  if (s.sequential) {
    charts.sequentialAcquire = mergeRuns(s.sequential.runs, 'acquire');
    charts.sequentialRelease = mergeRuns(s.sequential.runs, 'release');
    charts.sequentialPair = mergeRuns(s.sequential.runs, 'pair');
  }
  if (s.concurrent) charts.concurrentPair = mergeRuns(s.concurrent.runs, 'pair');
  if (s.contended) {
    charts.contendedHandoff = mergeRuns(s.contended.runs, 'handoff');
    charts.contendedHandoffOther = mergeRuns(s.contended.runs, 'handoffOther');
  }
  if (s.degraded) {
    for (const k of Object.keys(s.degraded.runs)) {
      charts[`degraded_${k}_acquire`] = mergeRuns(s.degraded.runs[k], 'acquire');
    }
  }
  for (const v of s.multiRegion?.variants ?? []) {
    charts[`multiRegion_${v.id}_acquire`] = mergeRuns(v.runs, 'acquire');
  }
  const strip = (runs) => {
    for (const list of Object.values(runs)) for (const r of list) delete r.hist;
  };
  for (const [name, sc] of Object.entries(s)) {
    if (name === 'memory' || name === 'order') continue;
    if (name === 'degraded') for (const k of Object.values(sc.runs)) strip(k);
    else if (name === 'multiRegion') for (const v of sc.variants) strip(v.runs);
    else strip(sc.runs);
  }
  results.charts = charts;
}

detachHistograms();
results.meta.secondsPerScenario = timings;
results.meta.machine.loadAvgAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
const report = buildReport(results);
results.summary = report.summary;
results.targets = report.targets;

const outDir = resolve(args.out ?? join(benchDir, 'results'));
mkdirSync(outDir, { recursive: true });
const stamp = results.meta.date.replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
const jsonPath = join(outDir, `bench-${stamp}.json`);
const htmlPath = join(outDir, `bench-${stamp}.html`);
writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(htmlPath, report.html);
copyFileSync(jsonPath, join(outDir, 'latest.json'));
copyFileSync(htmlPath, join(outDir, 'latest.html'));

process.stdout.write(report.markdown);
process.stderr.write(`\nresults: ${jsonPath}\nreport:  ${htmlPath}\n`);
process.exit(0);
