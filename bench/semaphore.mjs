#!/usr/bin/env node
// Semaphore under contention: N independent clients, each in a loop taking one
// of `limit` permits, holding it `hold` ms and releasing it, on 3 local
// redis-server masters; quorumlock's `redlock.semaphore()` against
// redis-semaphore's RedlockSemaphore in the same run, on the same nodes.
//
//   npm run build && npm --prefix bench ci && node bench/semaphore.mjs \
//     [--clients 16] [--limit 4] [--hold 1] [--duration 5s] [--nodes 3] [--json]
//
// Per contender: permits/s, acquire latency (p50, p99), fairness (fewest and
// most permits one client got), the most holders seen at once (by this
// process, which runs every client: above `limit` means the semaphore broke),
// and client CPU per permit. Markdown table on stdout, progress on stderr.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedlockSemaphore } from 'redis-semaphore';
import { Redlock } from '../dist/index.js';
import { killAll, nodeUrl, startEnsemble } from './ensemble.mjs';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '16' },
    limit: { type: 'string', default: '4' },
    hold: { type: 'string', default: '1' },
    duration: { type: 'string', default: '5s' },
    nodes: { type: 'string', default: '3' },
    json: { type: 'boolean' },
  },
});
const clients = Number(values.clients);
const limit = Number(values.limit);
const hold = Number(values.hold);
const durationMs = /s$/.test(values.duration)
  ? Number.parseFloat(values.duration) * 1000
  : Number(values.duration);
const ttl = 10_000;
const log = (line) => process.stderr.write(`${line}\n`);

/**
 * A contender: `open()` makes one client (its own connections) and returns
 * `{ take(name) → release(), close() }`.
 */
const contenders = [
  {
    label: 'quorumlock semaphore',
    open(urls) {
      const redlock = new Redlock(urls, { ttl });
      return {
        async take(name) {
          const permit = await redlock.semaphore(name, { limit }).acquire({ wait: 30_000 });
          return () => permit.release();
        },
        close: () => redlock.close(),
      };
    },
  },
  {
    label: 'redis-semaphore RedlockSemaphore',
    open(urls) {
      const redis = urls.map((u) => new Redis(u, { enableAutoPipelining: false }));
      return {
        async take(name) {
          // Defaults but the acquire timeout: retry every 10 ms.
          const semaphore = new RedlockSemaphore(redis, name, limit, {
            lockTimeout: ttl,
            acquireTimeout: 30_000,
          });
          await semaphore.acquire();
          return () => semaphore.release();
        },
        close: async () => {
          for (const r of redis) r.disconnect();
        },
      };
    },
  },
];

function quantile(sorted, q) {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function measure(contender, urls, name) {
  const members = Array.from({ length: clients }, () => contender.open(urls));
  // Warm up the connections and scripts outside the measured window.
  for (const m of members) await (await m.take(`${name}:warm`))();
  let holders = 0;
  let most = 0;
  const latencies = [];
  const counts = new Array(clients).fill(0);
  const cpu = process.cpuUsage();
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    members.map(async (m, i) => {
      while (performance.now() < end) {
        const asked = performance.now();
        const release = await m.take(name);
        latencies.push(performance.now() - asked);
        holders++;
        most = Math.max(most, holders);
        await sleep(hold);
        holders--;
        counts[i]++;
        await release();
      }
    }),
  );
  const elapsed = performance.now() - start;
  const used = process.cpuUsage(cpu);
  await Promise.all(members.map((m) => m.close()));
  const total = counts.reduce((a, b) => a + b, 0);
  latencies.sort((a, b) => a - b);
  return {
    contender: contender.label,
    permits: total,
    perSecond: (total * 1000) / elapsed,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    fewest: Math.min(...counts),
    most: Math.max(...counts),
    maxHolders: most,
    cpuMsPerPermit: (used.user + used.system) / 1000 / Math.max(1, total),
  };
}

const nodes = await startEnsemble(Number(values.nodes), log);
const urls = nodes.map(nodeUrl);
const results = [];
try {
  for (const [i, contender] of contenders.entries()) {
    log(
      `${contender.label}: ${clients} clients, limit ${limit}, hold ${hold} ms, ${durationMs} ms`,
    );
    results.push(await measure(contender, urls, `bench-semaphore-${i}`));
  }
} finally {
  killAll();
}

if (values.json) {
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} else {
  const f = (n, d = 1) => n.toFixed(d);
  const lines = [
    `Semaphore, ${urls.length} local redis-server masters, ${clients} clients, limit ${limit}, hold ${hold} ms, ${durationMs / 1000} s, Node ${process.version}`,
    '',
    '| client | permits/s | acquire p50 ms | acquire p99 ms | permits per client (fewest–most) | most holders at once | client CPU ms/permit |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r) =>
        `| ${r.contender} | ${f(r.perSecond)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${r.fewest}–${r.most} | ${r.maxHolders}${r.maxHolders > limit ? ' (over the limit)' : ''} | ${f(r.cpuMsPerPermit, 2)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
