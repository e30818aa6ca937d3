#!/usr/bin/env node
// ZooKeeper beside Redis, measured by the same `quorumlock bench` (sequential
// acquire/release latency, and N independent clients contending for one lock)
// on local servers: a 1-node ZooKeeper, a 3-node ZooKeeper ensemble, and 1 and
// 3 redis-server masters (Redlock) for comparison.
//
//   npm run build && node bench/zookeeper.mjs [--quick] [--samples N] [--duration D] [--clients N]
//
// Markdown table on stdout, progress on stderr; --json prints every raw result.
// ZooKeeper runs with tickTime=200 (sessions 0.4–4 s), so every lock uses ttl 4s.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startZooKeeper } from '../test/harness/zookeeper.mjs';
import { killAll, startEnsemble } from './ensemble.mjs';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    samples: { type: 'string' },
    duration: { type: 'string' },
    clients: { type: 'string' },
    json: { type: 'boolean' },
  },
});
const samples = values.samples ?? (values.quick ? '300' : '2000');
const duration = values.duration ?? (values.quick ? '3s' : '10s');
const clients = values.clients ?? '8';

/** Runs `quorumlock bench --json` against `nodes`; resolves with its result. */
function benchOn(nodes) {
  const args = [CLI, 'bench', '--json', '--nodes', nodes, '--ttl', '4s'];
  args.push('--samples', samples, '--duration', duration, '--clients', clients);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.once('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`bench on ${nodes} exited ${code}`)),
    );
  });
}

const targets = [
  {
    label: 'ZooKeeper, 1 server',
    start: async () => {
      const zk = await startZooKeeper({ size: 1 });
      return { nodes: zk.url('/bench'), stop: () => zk.stop() };
    },
  },
  {
    label: 'ZooKeeper, 3-server ensemble',
    start: async () => {
      const zk = await startZooKeeper({ size: 3 });
      return { nodes: zk.url('/bench'), stop: () => zk.stop() };
    },
  },
  ...[1, 3].map((n) => ({
    label: `Redis (Redlock), ${n} master${n > 1 ? 's' : ''}`,
    start: async () => {
      const servers = await startEnsemble(n);
      return {
        nodes: servers.map((s) => `redis://${s.host}:${s.port}`).join(','),
        stop: async () => killAll(),
      };
    },
  })),
];

const rows = [];
const raw = [];
for (const target of targets) {
  process.stderr.write(`bench/zookeeper: ${target.label}\n`);
  const servers = await target.start();
  try {
    const result = await benchOn(servers.nodes);
    raw.push({ target: target.label, result });
    rows.push(row(target.label, result));
  } finally {
    await servers.stop();
  }
}

if (values.json) {
  process.stdout.write(`${JSON.stringify(raw, null, 2)}\n`);
} else {
  const header = [
    'backend',
    'acquire p50',
    'acquire p99',
    'release p50',
    `${clients} clients: locks/s`,
    'handoff p50',
    'handoff p99',
    'shares min–max',
  ];
  process.stdout.write(
    `samples ${samples}, contention ${duration}, ${clients} clients, ttl 4s, ${new Date().toISOString()}\n\n`,
  );
  process.stdout.write(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n`);
  for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
}

function row(label, r) {
  const ms = (v) => `${v.toFixed(2)} ms`;
  const shares = r.contended.shares;
  return [
    label,
    ms(r.sequential.acquire.p50Ms),
    ms(r.sequential.acquire.p99Ms),
    ms(r.sequential.release.p50Ms),
    r.contended.acquisitionsPerSecond.toFixed(0),
    ms(r.contended.handoff.p50Ms),
    ms(r.contended.handoff.p99Ms),
    `${Math.min(...shares).toFixed(3)}–${Math.max(...shares).toFixed(3)}`,
  ];
}
