import { Redis } from 'ioredis';
import { fencedSet, Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
// The protected resource: your application's Redis, never one of the lock nodes.
const store = new Redis(process.env.STORE_URL ?? 'redis://127.0.0.1:6379');

const first = await redlock.acquire('config');
await first.release();
const second = await redlock.acquire('config');
console.log(await fencedSet(store, 'config:value', 'new', second.fence)); // accepted
console.log(await fencedSet(store, 'config:value', 'stale', first.fence)); // refused: older token
await second.release();
store.disconnect();
await redlock.close();
