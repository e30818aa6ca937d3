import { Redis } from 'ioredis';
import { fencedClaim, fencedSet, Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
const store = new Redis(process.env.STORE_URL ?? 'redis://127.0.0.1:6379');

await redlock.using('counter:visits', async (signal, lock) => {
  const claim = await fencedClaim(store, 'visits', lock.fence);
  if (!claim.accepted) throw new Error('a newer holder exists');
  const visits = Number(await store.get('visits')) + 1; // no stale write can land now
  signal.throwIfAborted();
  await fencedSet(store, 'visits', visits, lock.fence);
  console.log('visits:', visits);
});
store.disconnect();
await redlock.close();
