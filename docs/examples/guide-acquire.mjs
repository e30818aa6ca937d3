import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);

const lock = await redlock.acquire(['account:1', 'account:2'], { ttl: 5_000, wait: 2_000 });
try {
  console.log('both accounts locked, fences', lock.fences);
  // A second attempt while we hold it: one round, then null.
  console.log('tryAcquire while held:', await redlock.tryAcquire('account:1'));
} finally {
  await lock.release();
}

const again = await redlock.tryAcquire('account:1');
console.log('tryAcquire after release:', again !== null);
await again?.release();

// Give up waiting after 1 s through an AbortSignal.
const held = await redlock.acquire('report');
const reason = await redlock
  .acquire('report', { signal: AbortSignal.timeout(1_000) })
  .catch((err) => err);
console.log('waiter gave up:', reason.name);
await held.release();
await redlock.close();
