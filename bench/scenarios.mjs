// The measurements. Each function runs one contender once (one repetition of
// one scenario) and returns plain numbers plus HDR histograms in µs. The
// caller interleaves contenders and repeats.
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { newHistogram, recordMs, summarize } from './stats.mjs';

const now = () => performance.now();

/** Raised (as a value, never thrown out of a run) when one call took longer than the cap. */
const STALLED = Symbol('stalled');

/** Resolves with the promise's value, or STALLED after `capMs`; the promise's late rejection is swallowed. */
async function bounded(promise, capMs) {
  let timer;
  promise.catch(() => {});
  try {
    return await Promise.race([
      promise,
      new Promise((resolve) => {
        timer = setTimeout(resolve, capMs, STALLED);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One acquire + release that must not end the run: warm-up errors (a round
 * that timed out on a loaded machine) are ignored. False when a call stalled.
 */
export async function warmPair(inst, key, capMs = 10_000) {
  try {
    const h = await bounded(inst.acquire(key), capMs);
    if (h === STALLED) return false;
    return (await bounded(inst.release(h), capMs)) !== STALLED;
  } catch {
    return true;
  }
}

/** Per-pair Redis command counts from two commandCalls() snapshots, less the probe's own INFO. */
function perPair(before, after, pairs) {
  const out = {};
  let total = 0;
  for (const [cmd, n] of Object.entries(after.calls)) {
    const d = n - (before.calls[cmd] ?? 0) - (cmd === 'info' ? after.nodes : 0);
    if (d > 0) {
      out[cmd] = Math.round((d / pairs) * 100) / 100;
      total += d;
    }
  }
  return { total: Math.round((total / pairs) * 100) / 100, byCommand: out };
}

/**
 * Sums `INFO commandstats` over the nodes: { calls: { command: count }, nodes }.
 * `admins` are plain ioredis clients, one per node.
 */
export async function commandCalls(admins) {
  const calls = {};
  for (const admin of admins) {
    const text = await admin.info('commandstats');
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      calls[m[1]] = (calls[m[1]] ?? 0) + Number(m[2]);
    }
  }
  return { calls, nodes: admins.length };
}

/** `INFO commandstats` of each node: [{ command: calls }], one entry per admin client. */
export async function commandCallsPerNode(admins) {
  return Promise.all(
    admins.map(async (admin) => {
      const calls = {};
      const text = await admin.info('commandstats');
      for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]] = Number(m[2]);
      return calls;
    }),
  );
}

/** Commands a lock client sends itself, per contender: its script calls, plus a plain SET where it uses one. */
const SCRIPT_COMMANDS = ['evalsha', 'eval'];

/**
 * Per node, the script calls (EVALSHA + EVAL) and lock commands (scripts plus
 * `lockCommands`' plain commands) between two commandCallsPerNode() snapshots.
 */
function callsPerNode(before, after, lockCommands) {
  const delta = (i, cmd) => (after[i]?.[cmd] ?? 0) - (before[i]?.[cmd] ?? 0);
  return after.map((_, i) => {
    const scripts = SCRIPT_COMMANDS.reduce((sum, cmd) => sum + delta(i, cmd), 0);
    const plain = lockCommands
      .filter((cmd) => !SCRIPT_COMMANDS.includes(cmd))
      .reduce((sum, cmd) => sum + delta(i, cmd), 0);
    return { scripts, lock: scripts + plain };
  });
}

function cpuMicros(start) {
  const d = process.cpuUsage(start);
  return d.user + d.system;
}

/**
 * Sequential acquire + release for `durationMs` (after `warmupMs`). With
 * `fresh`, every pair locks a resource of its own (`key:0`, `key:1`, ...: per
 * entity locks such as invoice:42); otherwise every pair locks `key`.
 */
export async function sequential(
  inst,
  { key, fresh = false, durationMs, warmupMs, capMs = 10_000, progress, probe },
) {
  let serial = 0;
  const keyOf = fresh ? () => `${key}:${serial++}` : () => key;
  const warmEnd = now() + warmupMs;
  while (now() < warmEnd) {
    if (!(await warmPair(inst, keyOf(), capMs))) break;
  }
  const before = await probe?.();
  const acquire = newHistogram();
  const release = newHistogram();
  const pair = newHistogram();
  let pairs = 0;
  let stalled = null;
  let errors = 0;
  const errorSamples = [];
  const noteError = (err) => {
    errors++;
    if (errorSamples.length < 3) errorSamples.push(String(err?.message ?? err));
  };
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const end = t0 + durationMs;
  while (now() < end) {
    const k = keyOf();
    const a0 = now();
    let h;
    try {
      h = await bounded(inst.acquire(k), capMs);
    } catch (err) {
      noteError(err);
      continue;
    }
    if (h === STALLED) {
      stalled = 'acquire';
      break;
    }
    const a1 = now();
    let r;
    try {
      r = await bounded(inst.release(h), capMs);
    } catch (err) {
      noteError(err);
    }
    if (r === STALLED) {
      stalled = 'release';
      break;
    }
    const a2 = now();
    recordMs(acquire, a1 - a0);
    recordMs(release, a2 - a1);
    recordMs(pair, a2 - a0);
    pairs++;
    if ((pairs & 63) === 0) progress?.detail(`${pairs} pairs`);
  }
  const elapsed = now() - t0;
  const cpu = cpuMicros(cpu0);
  const after = await probe?.();
  return {
    pairs,
    errors,
    errorSamples,
    nodeCallsPerPair: before && after && pairs ? perPair(before, after, pairs) : null,
    stalled,
    elapsedMs: elapsed,
    pairsPerSec: (pairs / elapsed) * 1000,
    cpuUsPerPair: pairs ? cpu / pairs : Number.NaN,
    acquire: summarize(acquire),
    release: summarize(release),
    pair: summarize(pair),
    hist: { acquire, release, pair },
  };
}

/** `loops` concurrent acquire + release loops, each on its own key, sharing one client instance. */
export async function concurrent(
  inst,
  { keyBase, loops, durationMs, warmupMs, capMs = 10_000, progress },
) {
  const pair = newHistogram();
  let pairs = 0;
  let errors = 0;
  const errorSamples = [];
  const noteError = (err) => {
    if (!measuring) return;
    errors++;
    if (errorSamples.length < 3) errorSamples.push(String(err?.message ?? err));
  };
  let stalled = null;
  let measuring = false;
  let stop = false;
  const run = async (i) => {
    const key = `${keyBase}:${i}`;
    while (!stop) {
      const a0 = now();
      let h;
      try {
        h = await bounded(inst.acquire(key), capMs);
      } catch (err) {
        noteError(err);
        continue;
      }
      if (h === STALLED) {
        stalled = 'acquire';
        stop = true;
        break;
      }
      try {
        if ((await bounded(inst.release(h), capMs)) === STALLED) {
          stalled = 'release';
          stop = true;
          break;
        }
      } catch (err) {
        noteError(err);
      }
      if (measuring && !stop) {
        recordMs(pair, now() - a0);
        pairs++;
      }
    }
  };
  const workers = Array.from({ length: loops }, (_, i) => run(i));
  await sleep(warmupMs);
  measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const ticker = setInterval(() => progress?.detail(`${pairs} pairs`), 250);
  await sleep(durationMs);
  const elapsed = now() - t0;
  const counted = pairs;
  const cpu = cpuMicros(cpu0);
  measuring = false;
  stop = true;
  clearInterval(ticker);
  await bounded(Promise.all(workers), capMs + 1000);
  return {
    pairs: counted,
    errors,
    errorSamples,
    stalled,
    elapsedMs: elapsed,
    pairsPerSec: (counted / elapsed) * 1000,
    cpuUsPerPair: counted ? cpu / counted : Number.NaN,
    pair: summarize(pair),
    hist: { pair },
  };
}

/**
 * `clients` independent client instances (each with its own connections, all
 * in this process) contend for one key, holding it `holdMs` per critical
 * section, for `durationMs`. Overlaps are checked with a shared counter.
 */
export async function contended(
  contender,
  {
    nodes,
    ttl,
    key,
    clients,
    holdMs,
    durationMs,
    warmPairs = 20,
    progress,
    admins,
    resetStats = false,
  },
) {
  const insts = await Promise.all(
    Array.from({ length: clients }, () => contender.create({ nodes, ttl, contended: true })),
  );
  try {
    // Warm each client up on a key of its own (connections, scripts, JIT).
    await Promise.all(
      insts.map(async (inst, i) => {
        for (let k = 0; k < warmPairs; k++) await warmPair(inst, `${key}:warm:${i}`);
      }),
    );
    // Counted either per client instance or, for a process-wide source, once for all.
    const counter = contender.roundCounter?.(key);
    const readFailed = () => (counter ? [counter.read()] : insts.map((i) => i.failedRounds()));
    const failedAtStart = readFailed();
    let failedAtEnd = failedAtStart;
    const handoff = newHistogram();
    // Handoffs to a different client than the one that released: what a waiter sees.
    const handoffOther = newHistogram();
    const perClient = new Array(clients).fill(0);
    let holders = 0;
    let overlaps = 0;
    let waiting = 0;
    let sections = 0;
    let acquireErrors = 0;
    const errorSamples = [];
    let lastExit = null;
    let waiterAtExit = false;
    let maxGap = 0;
    let lastHolder = -1;
    let sameHolder = 0;
    const controller = new AbortController();
    // Every waiter of every client listens on this one signal.
    setMaxListeners(clients * 8, controller.signal);
    // Commands per node over the window: CONFIG RESETSTAT (on nodes the bench
    // started) then INFO commandstats before and after; the difference counts.
    if (admins && resetStats) await Promise.all(admins.map((a) => a.config('RESETSTAT')));
    const statsBefore = admins ? await commandCallsPerNode(admins) : null;
    let statsAfter = null;
    const cpu0 = process.cpuUsage();
    const t0 = now();
    const end = t0 + durationMs;
    let cpu = 0;
    let sectionsAtEnd = 0;
    const endTimer = setTimeout(() => {
      failedAtEnd = readFailed();
      cpu = cpuMicros(cpu0);
      sectionsAtEnd = sections;
      // A gap still open at the end counts too: waiters and nobody served since.
      if (holders === 0 && waiting > 0) {
        const open = now() - (lastExit ?? t0);
        if (open > maxGap) maxGap = open;
      }
      // INFO is written to every node before the abort makes waiters leave their queues.
      statsAfter = admins ? commandCallsPerNode(admins).catch(() => null) : null;
      controller.abort(new Error('benchmark over'));
    }, durationMs);
    const ticker = setInterval(() => progress?.detail(`${sections} critical sections`), 250);

    const loop = async (inst, i) => {
      while (now() < end) {
        waiting++;
        let h;
        try {
          h = await inst.acquire(key, controller.signal);
        } catch (err) {
          waiting--;
          if (now() >= end || controller.signal.aborted) break;
          acquireErrors++;
          if (errorSamples.length < 3) errorSamples.push(String(err?.message ?? err));
          continue;
        }
        waiting--;
        const t = now();
        if (t >= end) {
          await inst.release(h).catch(() => {});
          break;
        }
        if (holders > 0) overlaps++;
        holders++;
        // The first section: every client has been waiting since the start.
        if (lastExit === null && t - t0 > maxGap) maxGap = t - t0;
        if (lastExit !== null) {
          const gap = t - lastExit;
          recordMs(handoff, gap);
          if (waiterAtExit && gap > maxGap) maxGap = gap;
          if (lastHolder === i) sameHolder++;
          else recordMs(handoffOther, gap);
        }
        lastHolder = i;
        sections++;
        perClient[i]++;
        await sleep(holdMs);
        holders--;
        lastExit = now();
        waiterAtExit = waiting > 0;
        try {
          await inst.release(h);
        } catch {
          // An expired or failed release is the holder's problem, not the next waiter's.
        }
      }
    };
    const loops = insts.map((inst, i) => loop(inst, i));
    await sleep(durationMs);
    // Waiters of clients without cancellation drain by acquiring once more; bounded.
    const drained = (await bounded(Promise.all(loops), 20_000)) !== STALLED;
    clearTimeout(endTimer);
    clearInterval(ticker);
    counter?.close();
    const failed = failedAtEnd.every((f, i) => f !== null && failedAtStart[i] !== null)
      ? failedAtEnd.reduce((s, f, i) => s + f - failedAtStart[i], 0)
      : null;
    const minShare = Math.min(...perClient);
    const maxShare = Math.max(...perClient);
    const after = await statsAfter;
    const perNode =
      statsBefore && after
        ? callsPerNode(statsBefore, after, contender.lockCommands ?? SCRIPT_COMMANDS)
        : null;
    const perSection = (pick) =>
      perNode && sectionsAtEnd ? Math.max(...perNode.map(pick)) / sectionsAtEnd : Number.NaN;
    return {
      nodeCalls: perNode,
      // The busiest node's calls per critical section.
      scriptCallsPerSection: perSection((n) => n.scripts),
      lockCommandsPerSection: perSection((n) => n.lock),
      sections,
      sectionsPerSec: (sections / durationMs) * 1000,
      handoff: summarize(handoff),
      handoffOther: summarize(handoffOther),
      maxGapMs: maxGap,
      failedRounds: failed,
      failedPerSection: failed === null || sections === 0 ? null : failed / sections,
      sameHolderShare: sections > 1 ? sameHolder / (sections - 1) : 0,
      shareMinMax: maxShare > 0 ? minShare / maxShare : 0,
      perClient,
      overlaps,
      acquireErrors,
      errorSamples,
      cpuUsPerSection: sections ? cpu / sections : Number.NaN,
      drained,
      hist: { handoff, handoffOther },
    };
  } finally {
    await Promise.all(insts.map((i) => i.close().catch(() => {})));
  }
}

/** Round trip of PING to `node` (median of `samples`), in ms. */
export async function pingRtt(node, samples = 15) {
  const { default: net } = await import('node:net');
  const sock = net.connect({ host: node.host, port: node.port });
  sock.setNoDelay(true);
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const times = [];
  let buf = '';
  let waiter = null;
  sock.on('data', (d) => {
    buf += d.toString();
    if (buf.includes('\r\n')) {
      buf = '';
      waiter?.();
    }
  });
  for (let i = 0; i < samples; i++) {
    const t = now();
    await new Promise((resolve) => {
      waiter = resolve;
      sock.write('PING\r\n');
    });
    times.push(now() - t);
  }
  sock.destroy();
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

/**
 * Arrival order: in each of `trials` trials, one client instance holds a
 * fresh key while `waiters` other instances (each with its own connections)
 * start acquiring it `spacingMs` apart; `spacingMs` after the last one
 * started, the holder releases. Each waiter holds the lock `holdMs`, then
 * releases. A trial is in order when the waiters were served in the order
 * they began waiting.
 */
export async function fairOrder(
  contender,
  { nodes, ttl, key, waiters, trials, spacingMs, holdMs, capMs = 10_000, progress },
) {
  const insts = await Promise.all(
    Array.from({ length: waiters + 1 }, () => contender.create({ nodes, ttl, contended: true })),
  );
  try {
    await Promise.all(
      insts.map(async (inst, i) => {
        for (let k = 0; k < 5; k++) await warmPair(inst, `${key}:warm:${i}`);
      }),
    );
    const orders = [];
    const lastServedMs = [];
    let stalled = 0;
    let overlaps = 0;
    for (let t = 0; t < trials; t++) {
      progress?.detail(`trial ${t + 1}/${trials}`);
      const k = `${key}:${t}`;
      const holder = await bounded(insts[0].acquire(k), capMs);
      if (holder === STALLED) {
        stalled++;
        continue;
      }
      const controller = new AbortController();
      const order = [];
      let holders = 1;
      const tasks = [];
      for (let i = 0; i < waiters; i++) {
        if (i > 0) await sleep(spacingMs);
        const inst = insts[i + 1];
        tasks.push(
          (async () => {
            const h = await inst.acquire(k, controller.signal);
            if (holders > 0) overlaps++;
            holders++;
            order.push(i);
            await sleep(holdMs);
            holders--;
            await inst.release(h).catch(() => {});
          })().catch(() => {}),
        );
      }
      await sleep(spacingMs);
      const released = now();
      holders--;
      await insts[0].release(holder).catch(() => {});
      const done = await bounded(Promise.all(tasks), capMs);
      if (done === STALLED) {
        stalled++;
        controller.abort(new Error('trial over'));
        // Clients without cancellation finish on their own; give them a moment.
        await bounded(Promise.all(tasks), 2000);
      }
      lastServedMs.push(now() - released);
      orders.push(order);
    }
    const inOrder = orders.filter((o) => o.length === waiters && o.every((w, i) => w === i)).length;
    // Pairs of waiters served in the opposite order of their arrival, summed over the trials.
    let inversions = 0;
    for (const o of orders) {
      for (let a = 0; a < o.length; a++) {
        for (let b = a + 1; b < o.length; b++) if (o[a] > o[b]) inversions++;
      }
    }
    return {
      trials,
      waiters,
      inOrder,
      inversions,
      orders: orders.map((o) => o.join('')),
      stalled,
      overlaps,
      lastServedMs: summarizeList(lastServedMs),
    };
  } finally {
    await Promise.all(insts.map((i) => i.close().catch(() => {})));
  }
}

/** Median and max of plain numbers. */
function summarizeList(xs) {
  const v = [...xs].sort((a, b) => a - b);
  return {
    median: v.length ? v[v.length >> 1] : Number.NaN,
    max: v.length ? v.at(-1) : Number.NaN,
  };
}

/**
 * Keys of this run still on the nodes: SCAN for `*runPrefix*` on every node and
 * PTTL of each. Grouped by `groupOf(key)`: { group: { keys, noExpiry, sample } }.
 */
export async function leftoverKeys(admins, runPrefix, groupOf) {
  const groups = {};
  for (const admin of admins) {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `*${runPrefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const pipe = admin.pipeline();
      for (const k of keys) pipe.pttl(k);
      const ttls = await pipe.exec();
      keys.forEach((k, i) => {
        const name = groupOf(k);
        groups[name] ??= { keys: 0, noExpiry: 0, sample: [] };
        const g = groups[name];
        g.keys++;
        if (ttls[i][1] === -1) {
          g.noExpiry++;
          if (g.sample.length < 3) g.sample.push(k);
        }
      });
    } while (cursor !== '0');
  }
  return groups;
}
