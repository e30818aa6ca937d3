// Turns raw per-repetition results into the summary (medians with min–max),
// the target verdicts, Markdown tables for stdout and a self-contained HTML
// report with inline SVG latency-distribution charts.
import { spread } from './stats.mjs';

const ok = (r) => r && !r.failed;

/** spread() of `pick(run)` over the usable runs of one contender. */
function over(list, pick) {
  return spread((list ?? []).filter(ok).map(pick));
}

/** Up to three distinct error messages (and failures) seen in the runs. */
function samplesOf(list) {
  const all = list.flatMap((r) => (r.failed ? [r.failed] : (r.errorSamples ?? [])));
  return [...new Set(all)].slice(0, 3);
}

/** Footnotes naming the errors of each contender that had any. */
function errorNotes(table, labels, what = 'errors') {
  return Object.entries(table)
    .filter(([, x]) => x.errorSamples?.length)
    .map(([id, x]) => `${labels[id]} ${what}: ${x.errorSamples.join('; ')}`);
}

function summarizeSequential(runs) {
  const out = {};
  for (const [cid, list] of Object.entries(runs)) {
    const usable = list.filter((r) => ok(r) && !r.stalled && r.pairs > 0);
    out[cid] = {
      acquireP50: over(usable, (r) => r.acquire.p50),
      acquireP90: over(usable, (r) => r.acquire.p90),
      acquireP99: over(usable, (r) => r.acquire.p99),
      acquireMax: over(usable, (r) => r.acquire.max),
      releaseP50: over(usable, (r) => r.release.p50),
      releaseP99: over(usable, (r) => r.release.p99),
      pairP50: over(usable, (r) => r.pair.p50),
      pairP90: over(usable, (r) => r.pair.p90),
      pairP99: over(usable, (r) => r.pair.p99),
      pairMax: over(usable, (r) => r.pair.max),
      pairsPerSec: over(usable, (r) => r.pairsPerSec),
      cpuUsPerPair: over(usable, (r) => r.cpuUsPerPair),
      sameKeyPairP50: over(
        usable.filter((r) => r.sameKey && !r.sameKey.stalled && r.sameKey.pairs > 0),
        (r) => r.sameKey.pair.p50,
      ),
      nodeCallsPerPair: over(usable, (r) => r.nodeCallsPerPair?.total ?? Number.NaN),
      nodeCallsByCommand:
        usable.find((r) => r.nodeCallsPerPair)?.nodeCallsPerPair.byCommand ?? null,
      stalled: list.filter((r) => r.stalled).map((r) => r.stalled),
      failed: list.filter((r) => r.failed).map((r) => r.failed),
      errors: list.filter(ok).reduce((s, r) => s + (r.errors ?? 0), 0),
      errorSamples: samplesOf(list),
    };
  }
  return out;
}

function summarizeConcurrent(runs) {
  const out = {};
  for (const [cid, list] of Object.entries(runs)) {
    out[cid] = {
      pairsPerSec: over(list, (r) => r.pairsPerSec),
      cpuUsPerPair: over(list, (r) => r.cpuUsPerPair),
      pairP50: over(list, (r) => r.pair.p50),
      pairP99: over(list, (r) => r.pair.p99),
      errors: list.filter(ok).reduce((s, r) => s + r.errors, 0),
      errorSamples: samplesOf(list),
      stalled: list.filter((r) => r.stalled).map((r) => r.stalled),
      failed: list.filter((r) => r.failed).map((r) => r.failed),
    };
  }
  return out;
}

function summarizeContended(runs) {
  const out = {};
  for (const [cid, list] of Object.entries(runs)) {
    const usable = list.filter(ok);
    out[cid] = {
      sectionsPerSec: over(usable, (r) => r.sectionsPerSec),
      handoffP50: over(usable, (r) => r.handoff.p50),
      handoffP99: over(usable, (r) => r.handoff.p99),
      handoffOtherP50: over(usable, (r) => r.handoffOther?.p50 ?? Number.NaN),
      maxGapMs: over(usable, (r) => r.maxGapMs),
      failedPerSection: over(usable, (r) => r.failedPerSection ?? Number.NaN),
      shareMinMax: over(usable, (r) => r.shareMinMax),
      sameHolderShare: over(usable, (r) => r.sameHolderShare),
      cpuUsPerSection: over(usable, (r) => r.cpuUsPerSection),
      scriptCallsPerSection: over(usable, (r) => r.scriptCallsPerSection ?? Number.NaN),
      lockCommandsPerSection: over(usable, (r) => r.lockCommandsPerSection ?? Number.NaN),
      overlaps: usable.reduce((s, r) => s + r.overlaps, 0),
      acquireErrors: usable.reduce((s, r) => s + r.acquireErrors, 0),
      undrained: usable.filter((r) => !r.drained).length,
      errorSamples: samplesOf(usable),
      failed: list.filter((r) => r.failed).map((r) => r.failed),
    };
  }
  return out;
}

/** Builds everything the bench prints and writes from `results`. */
export function buildReport(results) {
  upgradeOldResults(results);
  const s = results.scenarios;
  const summary = {};
  if (s.sequential) summary.sequential = summarizeSequential(s.sequential.runs);
  if (s.concurrent) summary.concurrent = summarizeConcurrent(s.concurrent.runs);
  if (s.contended) summary.contended = summarizeContended(s.contended.runs);
  if (s.degraded) {
    summary.degraded = {};
    for (const [k, runs] of Object.entries(s.degraded.runs)) {
      summary.degraded[k] = summarizeSequential(runs);
    }
  }
  if (s.multiRegion) {
    summary.multiRegion = Object.fromEntries(
      s.multiRegion.variants.map((v) => [v.id, summarizeSequential(v.runs)]),
    );
  }
  if (s.memory) summary.memory = s.memory;
  if (s.order) summary.order = s.order.runs;
  if (results.leftover) summary.leftover = results.leftover;

  const targets = evaluateTargets(results, summary);
  const tables = buildTables(results, summary, targets);
  return {
    summary,
    targets,
    markdown: renderMarkdown(results, tables),
    html: renderHtml(results, tables),
  };
}

/** Saved results of earlier versions (one multi-region setting) in today's shape, for --report. */
function upgradeOldResults(results) {
  const m = results.scenarios.multiRegion;
  if (m && !m.variants) {
    results.scenarios.multiRegion = {
      variants: [
        {
          id: 'mixed',
          label: `mixed, ttl ${results.meta.ttlMs / 1000} s`,
          ttlMs: results.meta.ttlMs,
          addedRttsMs: results.meta.regionRttsMs ?? [],
          pingRttsMs: m.pingRttsMs,
          limitMs: m.limitMs,
          runs: m.runs,
        },
      ],
    };
    if (results.charts?.multiRegionAcquire) {
      results.charts.multiRegion_mixed_acquire = results.charts.multiRegionAcquire;
    }
  }
  results.meta.plan.multi.warmupPairs ??= 0;
}

// ---- targets ------------------------------------------------------------------------

const Q = 'quorumlock';
const QOFF = 'quorumlock-nofence';

function evaluateTargets(results, summary) {
  const kinds = Object.fromEntries(results.contenders.map((c) => [c.id, c.kind]));
  const labels = Object.fromEntries(results.contenders.map((c) => [c.id, c.label]));
  // "Other quorum clients": the Redlock libraries (not the floors, not the 1-node reference).
  const libraries = results.contenders.filter((c) => c.kind === 'library').map((c) => c.id);
  const targets = [];
  const add = (area, target, measured, met, detail) =>
    targets.push({ area, target, measured, met, detail });
  const med = (x) => x?.median;
  const fin = Number.isFinite;

  /** The other quorum client with the best value of `pick` (min or max), among those measured. */
  const best = (table, pick, dir) => {
    let id = null;
    let v = dir === 'min' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    for (const lib of libraries) {
      const x = med(pick(table?.[lib]));
      if (!fin(x)) continue;
      if (dir === 'min' ? x < v : x > v) {
        v = x;
        id = lib;
      }
    }
    return id === null ? null : { id, v, label: labels[id] };
  };
  const ratio = (a, b) => (fin(a) && fin(b) && b !== 0 ? a / b : Number.NaN);
  const r2 = (x) => (fin(x) ? x.toFixed(2) : 'n/a');
  const n0 = (x) => (fin(x) ? String(Math.round(x)) : 'n/a');
  /** `name value` of every other quorum client, for the detail column. */
  const theirs = (table, pick, fmt) =>
    libraries
      .filter((id) => table?.[id])
      .map((id) => `${labels[id]} ${fmt(med(pick(table[id])))}`)
      .join(', ');

  const seq = summary.sequential;
  if (seq?.[Q]) {
    const q = med(seq[Q].pairP50);
    const floorB = med(seq['floor-majority']?.pairP50);
    const r = ratio(q, floorB);
    add(
      'sequential',
      'pair p50, fencing on, fresh resource per pair ≤ 1.05 × majority SET NX floor',
      `${r2(r)}× (${n0(q)} vs ${n0(floorB)} µs)`,
      r <= 1.05,
    );
    const others = Object.keys(seq).filter(
      (id) => id !== Q && id !== QOFF && id !== 'floor-majority' && kinds[id] !== 'reference',
    );
    const beaten = others.filter((id) => fin(med(seq[id].pairP50)) && med(seq[id].pairP50) < q);
    const minOther = Math.min(...others.map((id) => med(seq[id].pairP50)).filter(fin));
    add(
      'sequential',
      'pair p50, fencing on, fresh resource per pair ≤ every other client',
      `${r2(ratio(q, minOther))}× the fastest of them${beaten.length ? `; faster: ${beaten.map((id) => labels[id]).join(', ')}` : ''}`,
      beaten.length === 0,
      `others: the quorum libraries and the all-replies floor (${others
        .map((id) => `${labels[id]} ${n0(med(seq[id].pairP50))} µs`)
        .join(', ')}); the 1-node Mutex is a single-Redis reference and not part of it`,
    );
  }

  // Fencing on vs off: a cost ratio (> 1 is slower with fencing) per scenario,
  // paired by repetition (the two variants run next to each other) and the
  // median taken over repetitions, which cancels most of the machine's drift.
  const sc = results.scenarios;
  const fenceCost = (runs, pick, higherIsBetter) => {
    const on = runs?.[Q] ?? [];
    const off = runs?.[QOFF] ?? [];
    const costs = [];
    for (let i = 0; i < Math.min(on.length, off.length); i++) {
      if (!ok(on[i]) || !ok(off[i]) || on[i].stalled || off[i].stalled) continue;
      const a = pick(on[i]);
      const b = pick(off[i]);
      if (fin(a) && fin(b) && a > 0 && b > 0) costs.push(higherIsBetter ? b / a : a / b);
    }
    return costs.length ? spread(costs) : null;
  };
  const costText = (c) =>
    `${c.median >= 1 ? '+' : ''}${((c.median - 1) * 100).toFixed(1)}%${
      c.n > 1
        ? ` (repetitions ${((c.min - 1) * 100).toFixed(0)}% to ${((c.max - 1) * 100).toFixed(0)}%)`
        : ''
    }`;
  const fenceTargets = [
    ['sequential pair p50 (fresh resources)', sc.sequential?.runs, (r) => r.pair?.p50, false],
    ['concurrent pairs/s', sc.concurrent?.runs, (r) => r.pairsPerSec, true],
    ['contended sections/s', sc.contended?.runs, (r) => r.sectionsPerSec, true],
    ['contended handoff p50', sc.contended?.runs, (r) => r.handoff?.p50, false],
  ];
  for (const [name, runs, pick, higher] of fenceTargets) {
    const c = fenceCost(runs, pick, higher);
    if (c)
      add(
        'fencing',
        `fencing on costs < 10% against fencing off: ${name}`,
        costText(c),
        c.median < 1.1,
      );
  }
  const fenceInfo = [
    ['sequential pair p50, same key', sc.sequential?.runs, (r) => r.sameKey?.pair?.p50, false],
    ['concurrent CPU/pair', sc.concurrent?.runs, (r) => r.cpuUsPerPair, false],
    ...['baseline', 'down', 'slow'].map((k) => [
      `degraded ${k} acquire p50`,
      sc.degraded?.runs?.[k],
      (r) => r.acquire?.p50,
      false,
    ]),
    ...(sc.multiRegion?.variants ?? []).map((v) => [
      `multi-region ${v.label} acquire p50`,
      v.runs,
      (r) => r.acquire?.p50,
      false,
    ]),
  ]
    .map(([name, runs, pick, higher]) => [name, fenceCost(runs, pick, higher)])
    .filter(([, c]) => c);
  if (fenceInfo.length) {
    add(
      'fencing',
      'fencing cost elsewhere (information, not a target)',
      fenceInfo.map(([name, c]) => `${name} ${costText(c).replace(/ \(.*\)$/, '')}`).join('; '),
      null,
    );
  }

  const conc = summary.concurrent;
  if (conc?.[Q]) {
    const b = best(conc, (x) => x?.pairsPerSec, 'max');
    const q = med(conc[Q].pairsPerSec);
    const r = ratio(q, b?.v);
    add(
      'concurrent ×64',
      'pairs/s ≥ every other quorum client',
      `${r2(r)}× the best of them (${n0(q)} vs ${n0(b?.v)} pairs/s, ${b?.label})`,
      r >= 1,
    );
    const c = best(conc, (x) => x?.cpuUsPerPair, 'min');
    const qc = med(conc[Q].cpuUsPerPair);
    const rc = ratio(qc, c?.v);
    add(
      'concurrent ×64',
      'client CPU per pair ≤ the lowest of the other quorum clients',
      `${r2(rc)}× (${n0(qc)} vs ${n0(c?.v)} µs/pair, ${c?.label})`,
      rc <= 1,
    );
  }

  const cont = summary.contended;
  if (cont?.[Q]) {
    const q = cont[Q];
    const b = best(cont, (x) => x?.sectionsPerSec, 'max');
    const qs = med(q.sectionsPerSec);
    const r = ratio(qs, b?.v);
    add(
      'contended ×16',
      'critical sections/s ≥ every other quorum client',
      `${r2(r)}× the best of them (${n0(qs)} vs ${n0(b?.v)}/s, ${b?.label})`,
      r >= 1,
    );
    add('contended ×16', 'critical sections/s ≥ 700', `${n0(qs)}/s`, qs >= 700);
    const h = best(cont, (x) => x?.handoffOtherP50, 'min');
    const qh = med(q.handoffOtherP50);
    const rh = ratio(qh, h?.v);
    add(
      'contended ×16',
      'handoff to another client p50 ≤ 0.5 × theirs ("theirs": the lowest of the other quorum clients)',
      `${r2(rh)}× (${n0(qh)} vs ${n0(h?.v)} µs, ${h?.label})`,
      rh <= 0.5,
      `others: ${theirs(
        cont,
        (x) => x.handoffOtherP50,
        (v) => `${n0(v)} µs`,
      )}`,
    );
    add(
      'contended ×16',
      'per-client share min/max ≥ 0.5',
      `${r2(q.shareMinMax.min)} in the worst repetition (median ${r2(q.shareMinMax.median)})`,
      q.shareMinMax.min >= 0.5,
    );
    const calls = q.scriptCallsPerSection;
    add(
      'contended ×16',
      '≤ 4 script calls (EVALSHA + EVAL) per critical section on any node',
      fin(calls.max)
        ? `${calls.max.toFixed(2)} on the busiest node, worst repetition (median ${calls.median.toFixed(2)})`
        : 'not counted',
      calls.max <= 4,
      `lock commands per section on the busiest node, others (scripts, plus SET where a client sends a plain SET NX): ${theirs(
        cont,
        (x) => x.lockCommandsPerSection,
        (v) => (fin(v) ? v.toFixed(2) : 'n/a'),
      )}`,
    );
    add(
      'contended ×16',
      'no gap > 100 ms while a client waits',
      `longest ${q.maxGapMs.max?.toFixed(1)} ms (worst repetition)`,
      q.maxGapMs.max <= 100,
    );
    const overlapOthers = Object.entries(cont)
      .filter(([id]) => id !== Q)
      .reduce((sum, [, x]) => sum + x.overlaps, 0);
    add(
      'contended ×16',
      '0 overlapping critical sections',
      `${q.overlaps}`,
      q.overlaps === 0,
      `every other contender together: ${overlapOthers}`,
    );
  }

  const order = summary.order;
  if (order?.[Q] && !order[Q].failed) {
    const q = order[Q];
    add(
      'arrival order',
      'waiters from independent clients served in the order they began waiting, every trial',
      `${q.inOrder}/${q.trials} trials in order (${q.waiters} waiters each)`,
      q.inOrder === q.trials && q.stalled === 0,
      `others: ${Object.entries(order)
        .filter(([id]) => id !== Q && !order[id].failed)
        .map(([id, x]) => `${labels[id]} ${x.inOrder}/${x.trials}`)
        .join(', ')}`,
    );
  }

  const left = summary.leftover;
  if (left?.groups) {
    const mine = [Q, QOFF].filter((id) => left.groups[id]);
    const noExp = mine.reduce((sum, id) => sum + left.groups[id].noExpiry, 0);
    const keys = mine.reduce((sum, id) => sum + left.groups[id].keys, 0);
    const allNoExp = Object.values(left.groups).reduce((sum, g) => sum + g.noExpiry, 0);
    add(
      'footprint',
      'after the run, no key without an expiry on any node',
      `${noExp} of quorumlock's ${keys} remaining keys have no expiry`,
      noExp === 0,
      `every contender: ${allNoExp} keys without an expiry`,
    );
  } else if (left?.failed) {
    add('footprint', 'after the run, no key without an expiry on any node', left.failed, false);
  }

  const deg = summary.degraded;
  if (deg?.baseline?.[Q]) {
    const base = med(deg.baseline[Q].acquireP50);
    for (const k of ['down', 'slow']) {
      const v = med(deg[k]?.[Q]?.acquireP50);
      const change = ratio(v, base) - 1;
      add(
        'degraded',
        `one node ${k === 'down' ? 'down' : `${results.meta.slowRttMs} ms slower`}: acquire p50 no more than 10% slower`,
        `${fin(change) ? `${change >= 0 ? '+' : ''}${(change * 100).toFixed(1)}%` : 'n/a'} (${n0(v)} vs ${n0(base)} µs${
          change < -0.1 ? `; faster${k === 'down' ? ': one node fewer to send to' : ''}` : ''
        })`,
        change < 0.1,
      );
    }
  }

  for (const v of results.scenarios.multiRegion?.variants ?? []) {
    const x = summary.multiRegion?.[v.id]?.[Q];
    if (!x) continue;
    const limitUs = v.limitMs * 1000;
    const a = med(x.acquireP50);
    const r = ratio(a, limitUs);
    add(
      'multi-region',
      `${v.label}: acquire p50 within 10% of the majority-th node's round trip (warm connections)`,
      `${r2(r)}× (${fin(a) ? (a / 1000).toFixed(1) : 'n/a'} vs ${v.limitMs.toFixed(1)} ms)`,
      r <= 1.1,
      x.stalled.length || x.failed.length
        ? `stalled or failed repetitions: ${x.stalled.length + x.failed.length}`
        : undefined,
    );
  }

  const mem = summary.memory;
  if (mem && !mem.failed) {
    add(
      'memory',
      `RSS growth after warm-up < 10% over ${mem.pairs} pairs`,
      `${(mem.growth * 100).toFixed(1)}% (median RSS ${mb(mem.rssEarly)} → ${mb(mem.rssLate)} MiB, max ${mb(mem.rssMax)})`,
      mem.growth < 0.1,
    );
  }
  return targets;
}

const totalSeconds = (m) =>
  Math.round(Object.values(m.secondsPerScenario ?? {}).reduce((a, b) => a + b, 0));
const mb = (b) => (b / 2 ** 20).toFixed(1);

// ---- tables ---------------------------------------------------------------------------

const us = (v) => (Number.isFinite(v) ? String(Math.round(v)) : '–');
const ms = (v) => (Number.isFinite(v) ? (v / 1000).toFixed(2) : '–');
const int = (v) => (Number.isFinite(v) ? String(Math.round(v)) : '–');
const pct = (v) => (Number.isFinite(v) ? `${Math.round(v * 100)}%` : '–');
const dec = (d) => (v) => (Number.isFinite(v) ? v.toFixed(d) : '–');

/** "median (min–max)" of a spread, or just the median for one repetition. */
function cell(x, fmt) {
  if (!x || !Number.isFinite(x.median)) return '–';
  if (x.n <= 1 || x.min === x.max) return fmt(x.median);
  return `${fmt(x.median)} (${fmt(x.min)}–${fmt(x.max)})`;
}

function buildTables(results, summary, targets) {
  const labels = Object.fromEntries(results.contenders.map((c) => [c.id, c.label]));
  const tables = [];
  const reps = results.meta.plan.reps;
  const spreadNote =
    reps > 1
      ? `Median of ${reps} repetitions, (min–max) across them.`
      : 'One repetition (--quick): indicative only.';

  if (summary.sequential) {
    tables.push({
      id: 'sequential',
      title: '1. Sequential uncontended acquire + release, a fresh resource per pair (µs)',
      note: `One client, acquire then release in a loop, every pair on a resource of its own (per-entity locks such as invoice:42). "pair p50, same key": a shorter window (${(results.meta.plan.seq.sameKeyMs ?? 0) / 1000} s) right after, every pair on one key. Redis calls/pair (fresh resources): commands the nodes executed per pair, summed over all nodes (INFO commandstats; commands run inside scripts count too). ${spreadNote}`,
      headers: [
        'contender',
        'acquire p50',
        'acquire p90',
        'acquire p99',
        'acquire max',
        'release p50',
        'pair p50',
        'pair p99',
        'pairs/s',
        'CPU µs/pair',
        'pair p50, same key',
        'Redis calls/pair',
      ],
      textColumns: [11],
      rows: Object.entries(summary.sequential).map(([id, x]) => [
        labels[id],
        cell(x.acquireP50, us),
        cell(x.acquireP90, us),
        cell(x.acquireP99, us),
        cell(x.acquireMax, us),
        cell(x.releaseP50, us),
        cell(x.pairP50, us),
        cell(x.pairP99, us),
        cell(x.pairsPerSec, int),
        cell(x.cpuUsPerPair, int),
        cell(x.sameKeyPairP50, us),
        x.nodeCallsByCommand
          ? `${dec(1)(x.nodeCallsPerPair.median)} (${Object.entries(x.nodeCallsByCommand)
              .map(([c, n]) => `${c} ${n}`)
              .join(', ')})`
          : '–',
      ]),
      footnotes: errorNotes(summary.sequential, labels),
      charts: ['sequentialPair', 'sequentialAcquire', 'sequentialRelease'],
    });
  }
  if (summary.concurrent) {
    const loops = results.meta.plan.conc.loops;
    tables.push({
      id: 'concurrent',
      title: `2. Concurrent uncontended: ${loops} loops on their own keys`,
      note: `One client instance, ${loops} concurrent acquire + release loops. Client CPU is process.cpuUsage() (user + system) over the window divided by pairs. ${spreadNote}`,
      headers: ['contender', 'pairs/s', 'CPU µs/pair', 'pair p50 (µs)', 'pair p99 (µs)', 'errors'],
      rows: Object.entries(summary.concurrent).map(([id, x]) => [
        labels[id],
        cell(x.pairsPerSec, int),
        cell(x.cpuUsPerPair, int),
        cell(x.pairP50, us),
        cell(x.pairP99, us),
        String(x.errors) + (x.stalled.length ? ` (stalled ${x.stalled.length}×)` : ''),
      ]),
      footnotes: errorNotes(summary.concurrent, labels),
      charts: ['concurrentPair'],
    });
  }
  if (summary.contended) {
    const p = results.meta.plan.cont;
    tables.push({
      id: 'contended',
      title: `3. Contended: ${p.clients} clients, one key, hold ${p.holdMs} ms, ${p.durationMs / 1000} s`,
      note: `${p.clients} independent client instances in this one process, each with its own connections. Handoff = a holder calls release → the next acquire resolves; "back to same client" = share of handoffs where the releasing client took the lock again; "to another client" counts only the other handoffs. Failed rounds = lost acquire rounds per critical section (quorumlock: its diagnostics channel; redlock family: lock.attempts; redis-semaphore: SET NX calls on one node). Longest gap: the longest time nobody held the lock while a client was waiting (from the start of the window, between sections, or still open at its end). Script calls / section: EVALSHA + EVAL calls on the busiest node over the window (CONFIG RESETSTAT, then INFO commandstats), per critical section; lock commands add the plain SET NX of the clients that send one. ${spreadNote}`,
      headers: [
        'contender',
        'sections/s',
        'handoff p50 (µs)',
        'handoff p99 (µs)',
        'to another client p50 (µs)',
        'longest gap (ms)',
        'failed rounds / section',
        'script calls / section, busiest node',
        'lock commands / section, busiest node',
        'share min/max',
        'back to same client',
        'CPU µs/section',
        'overlaps',
        'acquire errors',
      ],
      rows: Object.entries(summary.contended).map(([id, x]) => [
        labels[id],
        cell(x.sectionsPerSec, int),
        cell(x.handoffP50, us),
        cell(x.handoffP99, us),
        cell(x.handoffOtherP50, us),
        cell(x.maxGapMs, dec(1)),
        cell(x.failedPerSection, dec(2)),
        cell(x.scriptCallsPerSection, dec(2)),
        cell(x.lockCommandsPerSection, dec(2)),
        cell(x.shareMinMax, dec(2)),
        cell(x.sameHolderShare, pct),
        cell(x.cpuUsPerSection, int),
        String(x.overlaps),
        String(x.acquireErrors) + (x.undrained ? ` (${x.undrained} undrained)` : ''),
      ]),
      footnotes: errorNotes(summary.contended, labels, 'acquire errors'),
      charts: ['contendedHandoff', 'contendedHandoffOther'],
    });
  }
  if (summary.degraded) {
    const d = summary.degraded;
    const ids = Object.keys(d.baseline ?? {});
    const change = (k, id) => {
      const b = d.baseline[id]?.acquireP50?.median;
      const v = d[k]?.[id]?.acquireP50?.median;
      if (!Number.isFinite(b) || !Number.isFinite(v)) return '';
      const c = ((v - b) / b) * 100;
      return ` (${c >= 0 ? '+' : ''}${c.toFixed(0)}%)`;
    };
    const stall = (k, id) => {
      const x = d[k]?.[id];
      if (!x) return '–';
      if (x.stalled.length) {
        return `stalled ${x.stalled.length}× (${x.stalled[0]} > ${results.meta.plan.degr.capMs} ms)`;
      }
      return cell(x.acquireP50, ms) + change(k, id);
    };
    tables.push({
      id: 'degraded',
      title: '4. Degraded: one of the nodes down, or one node slower (acquire, ms)',
      note: `Every node behind the delay proxy (baseline: no added delay). "down": the last node's proxy resets its connections and refuses new ones after warm-up. "slow": the last node gets +${results.meta.slowRttMs} ms round trip. A call that takes over ${results.meta.plan.degr.capMs} ms counts as stalled and ends that repetition. ${spreadNote}`,
      headers: [
        'contender',
        'baseline p50',
        'down p50',
        'slow p50',
        'baseline p99',
        'down p99',
        'slow p99',
        'pairs/s base / down / slow',
      ],
      rows: ids.map((id) => [
        labels[id],
        cell(d.baseline[id]?.acquireP50, ms),
        stall('down', id),
        stall('slow', id),
        cell(d.baseline[id]?.acquireP99, ms),
        cell(d.down?.[id]?.acquireP99, ms),
        cell(d.slow?.[id]?.acquireP99, ms),
        ['baseline', 'down', 'slow'].map((k) => int(d[k]?.[id]?.pairsPerSec?.median)).join(' / '),
      ]),
      footnotes: ['baseline', 'down', 'slow'].flatMap((k) =>
        errorNotes(d[k] ?? {}, labels, `errors (${k})`),
      ),
      charts: ['degraded_baseline_acquire', 'degraded_down_acquire', 'degraded_slow_acquire'],
    });
  }
  if (summary.multiRegion) {
    const variants = results.scenarios.multiRegion.variants;
    const ids = Object.keys(summary.multiRegion[variants[0]?.id] ?? {});
    const p50 = (v, id) => {
      const x = summary.multiRegion[v.id]?.[id];
      if (!x) return '–';
      const m = x.acquireP50?.median;
      const stalls = x.stalled.length + x.failed.length;
      const text = Number.isFinite(m)
        ? `${(m / 1000).toFixed(1)} (${(m / (v.limitMs * 1000)).toFixed(2)}×)`
        : '–';
      return stalls ? `${text}, ${stalls} stalled/failed` : text;
    };
    tables.push({
      id: 'multiRegion',
      title: '5. Multi-region emulation: acquire p50 in ms (× the majority-th node’s round trip)',
      note: `Every node behind the delay proxy with an added round trip; each contender connects, runs ${results.meta.plan.multi.warmupPairs} warm-up pair${results.meta.plan.multi.warmupPairs === 1 ? '' : 's'} (connections open, quorumlock has measured the round trips) and then acquires and releases a fresh resource per pair for ${results.meta.plan.multi.durationMs / 1000} s. quorumlock runs with its default options (no nodeTimeout: it learns it from measured round trips). The limit of a majority decision is the round trip of the majority-th fastest node, measured with raw PINGs through its proxy (each variant's below the table). The other variants run the quorum clients and the majority floor${results.meta.quick ? ' (--quick: quorumlock and the majority floor)' : ''}. ${spreadNote}`,
      headers: [
        'contender',
        ...variants.map((v) => `${v.label}: acquire p50`),
        ...variants.map((v) => `${v.label}: acquire p99`),
      ],
      rows: ids.map((id) => [
        labels[id],
        ...variants.map((v) => p50(v, id)),
        ...variants.map((v) => cell(summary.multiRegion[v.id]?.[id]?.acquireP99, ms)),
      ]),
      footnotes: [
        ...variants.map(
          (v) =>
            `${v.label}: added round trips ${v.addedRttsMs.join(', ')} ms; measured PING ${v.pingRttsMs.map((x) => x.toFixed(1)).join(', ')} ms; majority-th ${v.limitMs.toFixed(1)} ms`,
        ),
        ...variants.flatMap((v) =>
          errorNotes(summary.multiRegion[v.id] ?? {}, labels, `errors (${v.label})`),
        ),
      ],
      charts: variants.map((v) => `multiRegion_${v.id}_acquire`),
    });
  }
  if (summary.memory) {
    const m = summary.memory;
    tables.push({
      id: 'memory',
      title: '6. Memory: RSS over many acquire/release pairs (quorumlock, fencing on)',
      note: m.failed
        ? m.failed
        : `Separate process, ${m.concurrency} concurrent loops, RSS sampled after gc()${m.gcExposed ? '' : ' (not exposed)'} every ${Math.round(m.pairs / 40)} pairs after a warm-up of the first 10%. Growth compares the median of the last quarter of samples with the median of the first quarter (single samples jump with what other loops have in flight).`,
      headers: [
        'pairs',
        'errors',
        'RSS early (MiB)',
        'RSS late',
        'growth',
        'RSS after warm-up → final, max',
        'heap early → late (MiB)',
      ],
      rows: m.failed
        ? []
        : [
            [
              String(m.pairs),
              String(m.errors),
              mb(m.rssEarly),
              mb(m.rssLate),
              `${(m.growth * 100).toFixed(1)}%`,
              `${mb(m.rssAfterWarmup)} → ${mb(m.rssFinal)}, ${mb(m.rssMax)}`,
              `${mb(m.heapEarly)} → ${mb(m.heapLate)}`,
            ],
          ],
    });
  }
  if (summary.order) {
    const o = results.meta.plan.order;
    tables.push({
      id: 'order',
      title: `7. Arrival order: ${o.waiters} waiters of independent clients, ${o.trials} trials`,
      note: `Per trial, one client instance holds a fresh key; ${o.waiters} other instances (own connections each) start acquiring it ${o.spacingMs} ms apart; ${o.spacingMs} ms after the last one started, the holder releases; each waiter holds the lock ${o.holdMs} ms. In order: served in the order they began waiting (waiter 0 first). Orders seen: the waiters' numbers in the order they were served. Inverted pairs: pairs of waiters served against their arrival, summed over the trials (at most ${(o.waiters * (o.waiters - 1)) / 2} per trial).`,
      headers: [
        'contender',
        'trials in order',
        'inverted pairs',
        'orders seen',
        'release → last waiter served, median (ms)',
        'overlaps',
        'stalled trials',
      ],
      textColumns: [3],
      rows: Object.entries(summary.order).map(([id, x]) =>
        x.failed
          ? [labels[id], 'failed', '–', x.failed, '–', '–', '–']
          : [
              labels[id],
              `${x.inOrder}/${x.trials}`,
              String(x.inversions),
              x.orders.join(' '),
              dec(0)(x.lastServedMs?.median),
              String(x.overlaps),
              String(x.stalled),
            ],
      ),
    });
  }
  if (summary.leftover?.groups) {
    const g = summary.leftover.groups;
    const known = results.contenders.map((c) => c.id);
    const none = { keys: 0, noExpiry: 0, sample: [] };
    const order = [...known, ...Object.keys(g).filter((id) => !known.includes(id))];
    tables.push({
      id: 'leftover',
      title: 'Keys left on the nodes after the run',
      note: "After the last scenario, SCAN of every node for the keys of this run, PTTL of each, grouped by the contender whose resources they belong to (quorumlock's include the memory check's). A key without an expiry (PTTL −1) stays until someone deletes it.",
      headers: ['contender', 'keys left', 'without an expiry', 'examples without an expiry'],
      textColumns: [3],
      rows: order.map((id) => [
        labels[id] ?? id,
        String((g[id] ?? none).keys),
        String((g[id] ?? none).noExpiry),
        (g[id] ?? none).sample.join(', ') || '–',
      ]),
    });
  }
  if (targets.length) {
    tables.push({
      id: 'targets',
      title: 'Targets (quorumlock with fencing on, ratios from this run)',
      note: 'The targets of issue 10 (and the multi-region one of issue 15), each computed from this run. "Other quorum clients": redlock, @sesamecare-oss/redlock and redis-semaphore RedlockMutex; "theirs" and "the best/lowest of them" take the best of the three for that metric. Fencing costs are medians over repetitions of the on/off ratio within one repetition (the two run next to each other).',
      headers: ['area', 'target', 'measured', 'met'],
      textColumns: [1, 2],
      rows: targets.map((t) => [
        t.area,
        t.target,
        t.measured + (t.detail ? ` — ${t.detail}` : ''),
        t.met === null ? 'info' : t.met ? 'yes' : '**no**',
      ]),
    });
  }
  return tables;
}

// ---- Markdown ----------------------------------------------------------------------------

function mdTable(t) {
  const esc = (s) => String(s).replace(/\|/g, '\\|');
  const lines = [`### ${t.title}`, '', t.note, ''];
  lines.push(`| ${t.headers.map(esc).join(' | ')} |`);
  // Numbers align right; names and sentences (the first column, `textColumns`) left.
  const left = new Set([0, ...(t.textColumns ?? [])]);
  lines.push(`| ${t.headers.map((_, i) => (left.has(i) ? '---' : '---:')).join(' | ')} |`);
  for (const r of t.rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  lines.push('');
  for (const f of t.footnotes ?? []) lines.push(`- ${f}`);
  if (t.footnotes?.length) lines.push('');
  return lines.join('\n');
}

/** The targets table first: the verdict, then the scenarios it is computed from. */
const verdictFirst = (tables) => [
  ...tables.filter((t) => t.id === 'targets'),
  ...tables.filter((t) => t.id !== 'targets'),
];

function renderMarkdown(results, tables) {
  const m = results.meta;
  const head = [
    `## quorumlock benchmarks${m.quick ? ' (--quick)' : ''}`,
    '',
    `\`${m.command}\` · ${m.date} · ${totalSeconds(m)} s · ${m.machine.nproc} CPUs (${m.machine.cpu}) · Node ${m.machine.node} · ${m.machine.redis ?? 'redis-server ?'} · ${m.nodes} nodes${m.nodesGiven ? ' (given)' : ' (started by the bench)'} · ttl ${m.ttlMs} ms${results.scenarios.multiRegion ? ' (multi-region: as each variant says)' : ''} · load average ${m.machine.loadAvgAtStart?.[0]} → ${m.machine.loadAvgAtEnd?.[0]}`,
    '',
  ];
  return `${head.join('\n')}\n${verdictFirst(tables).map(mdTable).join('\n')}`;
}

// ---- HTML + SVG ------------------------------------------------------------------------------

const COLORS = [
  '#d62728',
  '#ff7f0e',
  '#1f77b4',
  '#2ca02c',
  '#9467bd',
  '#8c564b',
  '#7f7f7f',
  '#17becf',
];
const escapeHtml = (s) =>
  String(s).replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c],
  );

const CHART_TITLES = {
  sequentialPair: 'Sequential: acquire + release pair latency',
  sequentialAcquire: 'Sequential: acquire latency',
  sequentialRelease: 'Sequential: release latency',
  concurrentPair: 'Concurrent ×64: pair latency',
  contendedHandoff: 'Contended: handoff latency (release → next acquire)',
  contendedHandoffOther: 'Contended: handoff latency to another client',
  degraded_baseline_acquire: 'Degraded, baseline (through proxies): acquire latency',
  degraded_down_acquire: 'Degraded, one node down: acquire latency',
  degraded_slow_acquire: 'Degraded, one node slow: acquire latency',
  'multiRegion_mixed-2s_acquire': 'Multi-region, mixed round trips, ttl 2 s: acquire latency',
  'multiRegion_mixed-10s_acquire': 'Multi-region, mixed round trips, ttl 10 s: acquire latency',
  'multiRegion_far-2s_acquire': 'Multi-region, every node 70–200 ms, ttl 2 s: acquire latency',
  'multiRegion_far-10s_acquire': 'Multi-region, every node 70–200 ms, ttl 10 s: acquire latency',
};

function fmtAxisUs(v) {
  if (v >= 1_000_000) return `${v / 1_000_000} s`;
  if (v >= 1000) return `${v / 1000} ms`;
  return `${v} µs`;
}

/** An SVG percentile plot: x = percentile on a log(1/(1−p)) scale, y = latency on a log scale. */
function svgChart(title, series) {
  const W = 820;
  const H = 380;
  const L = 70;
  const R = 280;
  const T = 30;
  const B = 50;
  const pw = W - L - R;
  const ph = H - T - B;
  const all = series.flatMap((s) => s.points.map((pt) => pt[1])).filter((v) => v > 0);
  if (all.length === 0) return '';
  const tailX = (p) => Math.min(5, -Math.log10(1 - p / 100));
  // The max of every series sits in a column of its own right of the densest percentile.
  const lastX = Math.max(
    ...series.flatMap((s) => s.points.filter((pt) => pt[0] < 100).map((pt) => tailX(pt[0]))),
  );
  const maxColumn = lastX + 0.45;
  const xOf = (p) => (p >= 100 ? maxColumn : tailX(p));
  const lo = Math.floor(Math.log10(Math.min(...all)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...all))));
  const maxX = maxColumn;
  const X = (x) => L + (x / maxX) * pw;
  const Y = (v) => T + ph - ((Math.log10(Math.max(v, 1)) - lo) / (hi - lo)) * ph;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(title)}">`,
    `<text x="${L}" y="18" font-size="14" font-weight="bold">${escapeHtml(title)}</text>`,
    `<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  ];
  for (let e = lo; e <= hi; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (Math.log10(v) > hi + 1e-9) continue;
      const y = Y(v).toFixed(1);
      parts.push(
        `<line x1="${L}" x2="${L + pw}" y1="${y}" y2="${y}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`,
      );
      if (m === 1 || hi - lo <= 2) {
        parts.push(
          `<text x="${L - 6}" y="${y}" font-size="11" text-anchor="end" dominant-baseline="middle">${fmtAxisUs(v)}</text>`,
        );
      }
    }
  }
  const ticks = [
    [0, 'p0'],
    [0.30103, 'p50'],
    [1, 'p90'],
    [2, 'p99'],
    [3, 'p99.9'],
    [4, 'p99.99'],
    [5, 'p99.999'],
  ]
    .filter(([x]) => x <= lastX + 1e-9)
    .concat([[maxColumn, 'max']]);
  for (const [x, label] of ticks) {
    const px = X(x).toFixed(1);
    parts.push(`<line x1="${px}" x2="${px}" y1="${T}" y2="${T + ph}" stroke="#eee"/>`);
    parts.push(
      `<text x="${px}" y="${T + ph + 16}" font-size="11" text-anchor="middle">${label}</text>`,
    );
  }
  parts.push(
    `<text x="${L + pw / 2}" y="${H - 8}" font-size="11" text-anchor="middle">percentile</text>`,
  );
  series.forEach((s, i) => {
    const d = s.points.map(
      (pt, j) => `${j ? 'L' : 'M'}${X(xOf(pt[0])).toFixed(1)},${Y(pt[1]).toFixed(1)}`,
    );
    parts.push(
      `<path d="${d.join('')}" fill="none" stroke="${s.color}" stroke-width="${s.bold ? 2.5 : 1.5}"/>`,
    );
    const ly = T + 10 + i * 18;
    parts.push(
      `<line x1="${L + pw + 12}" x2="${L + pw + 32}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="3"/>`,
    );
    parts.push(
      `<text x="${L + pw + 38}" y="${ly}" font-size="11" dominant-baseline="middle">${escapeHtml(s.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function htmlTable(t) {
  const head = `<tr>${t.headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const rows = t.rows
    .map(
      (r) =>
        `<tr>${r
          .map((c, i) => {
            const text = escapeHtml(c).replace(
              /\*\*(.+?)\*\*/g,
              '<strong class="miss">$1</strong>',
            );
            if (i === 0) return `<th scope="row">${text}</th>`;
            if (t.textColumns?.includes(i)) return `<td class="text">${text}</td>`;
            // "median (min–max) rest": the range on a line of its own, so wide tables fit.
            const m = text.match(/^([^ (]+) \(([^()]*–[^()]*)\)(.*)$/);
            return m
              ? `<td>${m[1]}${m[3]}<br><span class="range">${m[2]}</span></td>`
              : `<td>${text}</td>`;
          })
          .join('')}</tr>`,
    )
    .join('\n');
  return `<div class="scroll"><table>\n${head}\n${rows}\n</table></div>`;
}

function renderHtml(results, tables) {
  const m = results.meta;
  const colorOf = Object.fromEntries(
    results.contenders.map((c, i) => [c.id, COLORS[i % COLORS.length]]),
  );
  const labels = Object.fromEntries(results.contenders.map((c) => [c.id, c.label]));
  const sections = verdictFirst(tables).map((t) => {
    const charts = (t.charts ?? [])
      .map((name) => {
        const data = results.charts?.[name];
        if (!data || Object.keys(data).length === 0) return '';
        const series = Object.entries(data).map(([id, d]) => ({
          label: labels[id],
          color: colorOf[id],
          bold: id === 'quorumlock',
          points: d.curve,
        }));
        return `<figure>${svgChart(CHART_TITLES[name] ?? name, series)}</figure>`;
      })
      .join('\n');
    const notes = (t.footnotes ?? []).map((f) => `<li>${escapeHtml(f)}</li>`).join('');
    return `<section id="${t.id}"><h2>${escapeHtml(t.title)}</h2><p>${escapeHtml(t.note)}</p>${htmlTable(t)}${
      notes ? `<ul>${notes}</ul>` : ''
    }${charts}</section>`;
  });
  const settings = htmlTable({
    headers: ['contender', 'version', 'kind', 'settings'],
    textColumns: [3],
    rows: results.contenders.map((c) => [
      c.label,
      c.version ?? 'this repository',
      c.kind,
      c.settings,
    ]),
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quorumlock benchmarks ${escapeHtml(m.date)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap;vertical-align:top}
th[scope=row],tr:first-child th{text-align:left;background:#f6f6f6}tr:first-child th{white-space:normal;vertical-align:bottom;min-width:4em}
th[scope=row]{white-space:normal;min-width:10em}td.text{white-space:normal;text-align:left;min-width:14em}.range{color:#777;font-size:11px}
.scroll{overflow-x:auto}
.miss{color:#c00}figure{margin:8px 0}code{background:#f3f3f3;padding:1px 4px}
</style></head><body>
<h1>quorumlock benchmarks${m.quick ? ' (--quick)' : ''}</h1>
<p><code>${escapeHtml(m.command)}</code> · ${escapeHtml(m.date)} · ${m.machine.nproc} CPUs (${escapeHtml(m.machine.cpu)}), ${m.machine.memoryGiB} GiB · ${escapeHtml(m.machine.os)} · Node ${escapeHtml(m.machine.node)} · ${escapeHtml(m.machine.redis ?? '')} · ${m.nodes} nodes · ttl ${m.ttlMs} ms${results.scenarios.multiRegion ? ' (multi-region: as each variant says)' : ''} · load average ${m.machine.loadAvgAtStart?.[0]} → ${m.machine.loadAvgAtEnd?.[0]}${m.machine.commit ? ` · commit ${escapeHtml(m.machine.commit)}` : ''}</p>
${tables.some((t) => t.id === 'targets') ? sections.shift() : ''}
<h2>Contenders</h2>${settings}
${sections.join('\n')}
</body></html>
`;
}
