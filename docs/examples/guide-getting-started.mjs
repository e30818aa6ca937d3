import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes, { ttl: 10_000 });

const lock = await redlock.acquire('invoice:42');
try {
  console.log(
    `holding invoice:42 with fence ${lock.fence}, ${Math.round(lock.remaining())} ms left`,
  );
} finally {
  await lock.release();
}
await redlock.close();
