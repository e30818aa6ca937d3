import { Redis } from 'ioredis';
import { fencedSet, Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
// Your application's store: any Redis or Cluster, never one of the lock nodes.
const store = new Redis(process.env.STORE_URL ?? 'redis://127.0.0.1:6379');

await redlock.using('invoice:42', async (signal, lock) => {
  const total = await computeTotal(signal);
  const { accepted, highest } = await fencedSet(store, 'invoice:42:total', total, lock.fence);
  if (!accepted) throw new Error(`lost invoice:42 to the holder with token ${highest}`);
  console.log(`total ${total} written with token ${lock.fence}`);
});
store.disconnect();
await redlock.close();

/** @param {AbortSignal} signal */
async function computeTotal(signal) {
  signal.throwIfAborted();
  return 129.5;
}
