#!/usr/bin/env node
// Where the time goes: the measurements behind the "targets" analysis in
// docs/benchmarks.md, run on five throwaway redis-server masters.
//
//   node bench/explain.mjs [--reps N] [--seconds S]
//
// - Sequential cost split: per acquire + release pair on a fresh resource
//   (as the bench's scenario 1), client CPU, server CPU
//   (INFO cpu of every node: scripts, commands and the servers' own socket
//   work), and a sampled CPU profile of the client bucketed by where the time
//   is spent (socket writes, ioredis, library code, AbortSignal, GC).
// - Contended rounds: quorumlock's acquire rounds with 16 clients on one key
//   (the bench's contended scenario), classified by how many nodes each lost
//   round won, to tell a herd of clean losses from split votes, and the script
//   calls per critical section on the busiest node (INFO commandstats).
// Markdown on stdout; exit codes as bench/run.mjs (0, 64 usage, 1 failure).
import diagnosticsChannel from 'node:diagnostics_channel';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { allContenders, loadQuorumlock } from './contenders.mjs';
import { installExitHooks, killAll, startEnsemble } from './ensemble.mjs';
import { contended, sequential } from './scenarios.mjs';

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      reps: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '3' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  process.stderr.write(`explain: ${String(err?.message ?? err).split('. ')[0]} (see --help)\n`);
  process.exit(64);
}
if (args.help) {
  process.stdout.write(
    'usage: node bench/explain.mjs [--reps N] [--seconds S]\n  sequential cost split and contended round classification; Markdown on stdout\n',
  );
  process.exit(0);
}
const reps = Number(args.reps);
const seconds = Number(args.seconds);
if (!Number.isInteger(reps) || reps < 1 || !(seconds > 0)) {
  process.stderr.write('explain: --reps wants a positive integer, --seconds a positive number\n');
  process.exit(64);
}

/** Lock ttl (ms), as in bench/run.mjs. */
const TTL = 10_000;
const SEQUENTIAL_IDS = [
  'quorumlock',
  'quorumlock-nofence',
  'redlock',
  'semaphore-redlock',
  'floor-majority',
];

const quorumlock = await loadQuorumlock();
installExitHooks();
const nodes = await startEnsemble(5);
const admins = nodes.map((n) => new Redis({ host: n.host, port: n.port }));
const contenders = allContenders();
const byId = (id) => contenders.find((c) => c.id === id);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** "median (min–max)" of the finite values; "–" when there are none (say, no handoff at all). */
const range = (values, digits = 0) => {
  const xs = values.filter(Number.isFinite);
  if (xs.length === 0) return '–';
  const f = (x) => x.toFixed(digits);
  return xs.length === 1
    ? f(xs[0])
    : `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
};

/** CPU seconds (user + system) the servers used so far, summed over the nodes, in µs. */
async function serverCpuMicros() {
  let total = 0;
  for (const admin of admins) {
    const text = await admin.info('cpu');
    const user = Number(text.match(/^used_cpu_user:([\d.]+)/m)[1]);
    const sys = Number(text.match(/^used_cpu_sys:([\d.]+)/m)[1]);
    total += (user + sys) * 1e6;
  }
  return total;
}

/** Client CPU of one profile, in µs per pair, by where it was spent. */
function bucketProfile(profile, pairs) {
  const nodesById = new Map(profile.nodes.map((n) => [n.id, n]));
  const bucket = ({ callFrame: { url, functionName } }) => {
    if (functionName === '(idle)') return null;
    if (functionName === 'writeUtf8String' || functionName === 'writev') return 'socket writes';
    if (functionName === '(garbage collector)') return 'GC';
    if (
      /\/(ioredis|@ioredis|redis-parser|denque|standard-as-callback|cluster-key-slot)\//.test(url)
    )
      return 'ioredis';
    if (url.includes('/dist/')) return 'library';
    if (url.includes('abort_controller') || url.includes('event_target')) return 'AbortSignal';
    return 'other';
  };
  const out = { 'socket writes': 0, ioredis: 0, library: 0, AbortSignal: 0, GC: 0, other: 0 };
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const key = bucket(nodesById.get(profile.samples[i]));
    if (key) out[key] += (deltas[i] ?? 0) / pairs;
  }
  return out;
}

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 200 });

/** One sequential repetition of contender `c`: latency, client and server CPU, profile. */
async function sequentialSplit(c, rep) {
  const inst = await c.create({ nodes, ttl: TTL, contended: false });
  try {
    const key = `explain:seq:${c.id}:${rep}`;
    // A fresh resource per pair, as scenario 1 of the bench (per-entity locks).
    const window = (name, durationMs, warmupMs) =>
      sequential(inst, { key: `${key}:${name}`, fresh: true, durationMs, warmupMs });
    await window('warm', 300, 200);
    const server0 = await serverCpuMicros();
    const r = await window('cpu', seconds * 1000, 0);
    const server = ((await serverCpuMicros()) - server0) / r.pairs;
    // Profiled in a window of its own: sampling costs CPU and must not inflate the others.
    await session.post('Profiler.start');
    const p = await window('profile', seconds * 1000, 0);
    const { profile } = await session.post('Profiler.stop');
    return {
      pairP50: r.pair.p50,
      clientCpu: r.cpuUsPerPair,
      serverCpu: server,
      split: bucketProfile(profile, p.pairs),
    };
  } finally {
    await inst.close().catch(() => {});
  }
}

const seq = Object.fromEntries(SEQUENTIAL_IDS.map((id) => [id, []]));
for (let rep = 0; rep < reps; rep++) {
  for (const id of SEQUENTIAL_IDS) {
    process.stderr.write(`sequential · rep ${rep + 1}/${reps} · ${id}\n`);
    seq[id].push(await sequentialSplit(byId(id), rep));
  }
}

/** One contended repetition of quorumlock with every acquire round classified. */
async function contendedRounds(rep) {
  const key = `explain:cont:${rep}`;
  const rounds = [];
  const onRound = (event) => {
    if (!event.resources.includes(key)) return;
    const end = performance.now();
    rounds.push({
      ok: event.ok,
      won: event.nodes.filter((n) => n.status === 'acquired').length,
      start: end - event.durationMs,
      end,
    });
  };
  diagnosticsChannel.subscribe(quorumlock.channels.acquire, onRound);
  let r;
  try {
    r = await contended(byId('quorumlock'), {
      nodes,
      ttl: TTL,
      key,
      clients: 16,
      holdMs: 1,
      durationMs: seconds * 1000,
      admins,
      resetStats: true,
    });
  } finally {
    diagnosticsChannel.unsubscribe(quorumlock.channels.acquire, onRound);
  }
  const lost = rounds.filter((x) => !x.ok);
  // How bunched the rounds are: other rounds still in flight when one starts.
  const sorted = [...rounds].sort((a, b) => a.start - b.start);
  let overlapping = 0;
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i - 1; j >= 0 && sorted[i].start - sorted[j].start < 1000; j--) {
      if (sorted[j].end > sorted[i].start) overlapping++;
    }
  }
  return {
    sectionsPerSec: r.sectionsPerSec,
    lostPerSection: lost.length / r.sections,
    wonNone: lost.length ? lost.filter((x) => x.won === 0).length / lost.length : 0,
    wonSome: lost.length ? lost.filter((x) => x.won > 0).length / lost.length : 0,
    inFlight: overlapping / rounds.length,
    sameHolder: r.sameHolderShare,
    cpuPerSection: r.cpuUsPerSection,
    handoffP50: r.handoff.p50,
    scriptCalls: r.scriptCallsPerSection,
  };
}

const cont = [];
for (let rep = 0; rep < reps; rep++) {
  process.stderr.write(`contended · rep ${rep + 1}/${reps} · quorumlock\n`);
  cont.push(await contendedRounds(rep));
}
session.disconnect();
for (const admin of admins) admin.disconnect();
killAll();

const lines = [];
lines.push(
  '### Sequential: where a pair’s CPU goes (µs per acquire + release pair)',
  '',
  `One client, a fresh resource per pair, ${seconds} s per repetition; median of ${reps} (min–max). Client CPU: process.cpuUsage(). Server CPU: INFO cpu (user + sys) summed over the 5 nodes. The split columns come from a V8 sampling profile of the client in a second window of the same length (medians; sampling adds its own cost, so they sum to a little more than client CPU).`,
  '',
  '| contender | pair p50 | client CPU | server CPU | socket writes | ioredis | library | AbortSignal | GC | other |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
);
for (const id of SEQUENTIAL_IDS) {
  const runs = seq[id];
  const col = (f, d = 0) => range(runs.map(f), d);
  lines.push(
    `| ${byId(id).label} | ${col((x) => x.pairP50)} | ${col((x) => x.clientCpu)} | ${col((x) => x.serverCpu)} | ${[
      'socket writes',
      'ioredis',
      'library',
      'AbortSignal',
      'GC',
      'other',
    ]
      .map((k) => median(runs.map((x) => x.split[k])).toFixed(0))
      .join(' | ')} |`,
  );
}
lines.push(
  '',
  '### Contended: quorumlock’s acquire rounds (16 clients, one key, hold 1 ms)',
  '',
  `Median of ${reps} (min–max). A lost round "won none" when no node said yes to it: it lost cleanly to the holder, not in a split vote.`,
  '',
  '| sections/s | lost rounds / section | lost rounds that won no node | won 1–2 nodes (split) | rounds in flight when one starts | back to same client | CPU µs / section | handoff p50 (µs) | script calls / section, busiest node |',
  '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  `| ${range(
    cont.map((x) => x.sectionsPerSec),
    0,
  )} | ${range(
    cont.map((x) => x.lostPerSection),
    2,
  )} | ${range(
    cont.map((x) => x.wonNone * 100),
    1,
  )}% | ${range(
    cont.map((x) => x.wonSome * 100),
    1,
  )}% | ${range(
    cont.map((x) => x.inFlight),
    1,
  )} | ${range(
    cont.map((x) => x.sameHolder * 100),
    0,
  )}% | ${range(
    cont.map((x) => x.cpuPerSection),
    0,
  )} | ${range(
    cont.map((x) => x.handoffP50),
    0,
  )} | ${range(
    cont.map((x) => x.scriptCalls),
    2,
  )} |`,
  '',
);
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(0);
