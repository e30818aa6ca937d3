// The backends side by side: sequential acquire/release latency of one
// client, and contention of independent clients on one resource, for Redis
// (Redlock over 5 local masters), PostgreSQL 15, MariaDB and ZooKeeper 3.8 (1 and
// 3 servers), all on this machine's loopback, through `connect()` of the built
// library (dist/).
//
//   npm run bench:backends -- [--iterations 300] [--clients 8] [--seconds 5]
//                             [--backends redis,postgres,mysql,zookeeper,zookeeper3] [--json]
//
// Servers come from the test harness launchers (and bench/ensemble.mjs for
// Redis), each started fresh and stopped by pid at the end.
import { parseArgs } from 'node:util';
import { connect } from '../dist/index.js';
import { startMySql } from '../test/harness/mysql.mjs';
import { startPostgres } from '../test/harness/postgres.mjs';
import { startZooKeeper } from '../test/harness/zookeeper.mjs';
import { killAll, nodeUrl, startEnsemble } from './ensemble.mjs';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '300' },
    clients: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
    backends: { type: 'string', default: 'redis,postgres,mysql,zookeeper,zookeeper3' },
    json: { type: 'boolean', default: false },
  },
});
const iterations = Number(values.iterations);
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const wanted = values.backends.split(',');

const servers = {
  async redis() {
    const nodes = await startEnsemble(5, () => {});
    return { label: 'Redis, Redlock over 5 masters', urls: nodes.map(nodeUrl), stop: killAll };
  },
  async postgres() {
    const server = await startPostgres();
    return { label: 'PostgreSQL 15', urls: [server.url], stop: () => server.stop() };
  },
  async mysql() {
    const server = await startMySql();
    return { label: 'MariaDB 10.11', urls: [server.url], stop: () => server.stop() };
  },
  async zookeeper() {
    const zk = await startZooKeeper({ size: 1 });
    return { label: 'ZooKeeper 3.8, 1 server', urls: [zk.url('/bench')], stop: () => zk.stop() };
  },
  async zookeeper3() {
    const zk = await startZooKeeper({ size: 3 });
    return { label: 'ZooKeeper 3.8, 3 servers', urls: [zk.url('/bench')], stop: () => zk.stop() };
  },
};

function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted.at(-1),
  };
}

/** One client acquires and releases one resource `iterations` times, after a warm-up. */
async function sequential(urls) {
  const provider = await connect(urls);
  const acquire = [];
  const release = [];
  try {
    for (let i = 0; i < iterations + 20; i++) {
      const t0 = performance.now();
      const lock = await provider.acquire('bench:sequential');
      const t1 = performance.now();
      await lock.release();
      const t2 = performance.now();
      if (i >= 20) {
        acquire.push(t1 - t0);
        release.push(t2 - t1);
      }
    }
  } finally {
    await provider.close();
  }
  return { acquire: summary(acquire), release: summary(release) };
}

/** `clients` independent providers take turns on one resource for `seconds`. */
async function contention(urls) {
  const providers = await Promise.all(Array.from({ length: clients }, () => connect(urls)));
  const waits = [];
  const counts = new Array(clients).fill(0);
  let inside = 0;
  let overlaps = 0;
  const end = performance.now() + seconds * 1000;
  try {
    // Connect every client before the clock starts.
    for (const p of providers) await (await p.acquire('bench:warmup')).release();
    const started = performance.now();
    await Promise.all(
      providers.map(async (provider, i) => {
        while (performance.now() < end) {
          const t0 = performance.now();
          const lock = await provider.acquire('bench:contended', { wait: 60_000 });
          waits.push(performance.now() - t0);
          if (++inside > 1) overlaps++;
          counts[i]++;
          inside--;
          await lock.release();
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const total = counts.reduce((a, b) => a + b, 0);
    return {
      perSecond: total / elapsed,
      total,
      wait: summary(waits),
      share: { min: Math.min(...counts) / total, max: Math.max(...counts) / total },
      overlaps,
    };
  } finally {
    await Promise.all(providers.map((p) => p.close()));
  }
}

const results = [];
for (const name of wanted) {
  const server = await servers[name]();
  try {
    const seq = await sequential(server.urls);
    const con = await contention(server.urls);
    results.push({ backend: server.label, sequential: seq, contention: con });
  } finally {
    await server.stop();
  }
}

if (values.json) {
  process.stdout.write(`${JSON.stringify({ iterations, clients, seconds, results }, null, 2)}\n`);
} else {
  const ms = (v) => (v < 10 ? v.toFixed(2) : v.toFixed(1));
  const lines = [
    `sequential: ${iterations} acquire+release of one resource by one client (ms)`,
    `contention: ${clients} independent clients on one resource for ${seconds} s`,
    '',
    '| backend | acquire p50 | acquire p99 | release p50 | release p99 | contended acquisitions/s | wait p50 | wait p99 | share min–max | overlaps |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const { sequential: s, contention: c } = r;
    lines.push(
      `| ${r.backend} | ${ms(s.acquire.p50)} | ${ms(s.acquire.p99)} | ${ms(s.release.p50)} | ${ms(s.release.p99)} | ` +
        `${Math.round(c.perSecond)} | ${ms(c.wait.p50)} | ${ms(c.wait.p99)} | ` +
        `${(c.share.min * 100).toFixed(0)}–${(c.share.max * 100).toFixed(0)} % | ${c.overlaps} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
