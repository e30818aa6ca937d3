// What fencing tokens cost: acquire latency with fencing on and off, measured
// in the same run against the same three local redis-server processes, rounds
// interleaved so both settings see the same machine load.
//
//   npm run build && node docs/examples/fencing-cost.mjs [rounds]
//
// Needs `redis-server` on PATH. Prints median and p90 acquire latency of each
// setting, their ratio, and how many acquisitions needed fencing phase 2
// (expected: only the first, which seeds the counters from each node's clock).
import { Redis } from 'ioredis';
import { startLocalEnsemble } from '../../dist/cli/ensemble.js';
import { Redlock } from '../../dist/index.js';

const rounds = Number(process.argv[2] ?? 2000);
const NODES = 3;

const ensemble = await startLocalEnsemble({ size: NODES });
const admins = [];
try {
  const urls = [...ensemble.urls];
  for (const s of ensemble.servers) admins.push(new Redis({ port: s.port, host: '127.0.0.1' }));

  const fenced = new Redlock(urls, { ttl: 10_000, nodeTimeout: 1_000 });
  const plain = new Redlock(urls, { ttl: 10_000, nodeTimeout: 1_000, fencing: false });
  const timeOne = async (redlock, resource) => {
    const start = performance.now();
    const lock = await redlock.acquire(resource);
    const ms = performance.now() - start;
    await lock.release();
    return { ms, fence: lock.fence };
  };

  // Warm up connections, script caches and the JIT; this also seeds the counters.
  for (let i = 0; i < 200; i++) {
    await timeOne(fenced, 'cost:fenced');
    await timeOne(plain, 'cost:plain');
  }

  // Releases are decided at quorum; a read on every node lets the last ones land first.
  const settle = async () => {
    await fenced.inspect('cost:fenced');
    await plain.inspect('cost:plain');
  };
  await settle();
  const scriptsBefore = await scriptCalls();
  const on = [];
  const off = [];
  let lastFence = 0;
  for (let i = 0; i < rounds; i++) {
    // ABBA order: neither setting always runs first.
    const order = i % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
    for (const which of order) {
      if (which === 'on') {
        const { ms, fence } = await timeOne(fenced, 'cost:fenced');
        if (!(fence > lastFence)) throw new Error(`token ${fence} after ${lastFence}`);
        lastFence = fence;
        on.push(ms);
      } else {
        off.push((await timeOne(plain, 'cost:plain')).ms);
      }
    }
  }
  await settle();
  const scripts = (await scriptCalls()) - scriptsBefore;
  // Per node and acquisition: one acquire and one release script; plus the two inspects.
  const phase2 = scripts - NODES * (4 * rounds + 2);

  await fenced.close();
  await plain.close();

  const q = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
  };
  const fmt = (ms) => `${(ms * 1000).toFixed(0)} µs`;
  console.log(
    `acquire latency over ${rounds} rounds each, ${NODES} local nodes, node ${process.version}`,
  );
  console.log(`  fencing on : median ${fmt(q(on, 0.5))}, p90 ${fmt(q(on, 0.9))}`);
  console.log(`  fencing off: median ${fmt(q(off, 0.5))}, p90 ${fmt(q(off, 0.9))}`);
  console.log(`  median ratio on/off: ${(q(on, 0.5) / q(off, 0.5)).toFixed(3)}`);
  console.log(`  p90 ratio on/off:    ${(q(on, 0.9) / q(off, 0.9)).toFixed(3)}`);
  console.log(`  phase-2 script calls during the measured rounds: ${phase2}`);
} finally {
  for (const a of admins) a.disconnect();
  await ensemble.stop();
}

async function scriptCalls() {
  let total = 0;
  for (const admin of admins) {
    const info = await admin.info('commandstats');
    for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) total += Number(m[1]);
  }
  return total;
}
