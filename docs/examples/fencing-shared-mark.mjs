import { Redis } from 'ioredis';
import { fencedCall, fencedSet, highestFence, Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
const store = new Redis(process.env.STORE_URL ?? 'redis://127.0.0.1:6379');

const lock = await redlock.acquire('invoice:42');
// One mark for every key of the resource, in their hash slot ({invoice:42}).
const opts = { fenceKey: '{invoice:42}:fence' };
await fencedCall(store, '{invoice:42}:lines', lock.fence, 'RPUSH', ['SKU-1 x2'], opts);
await fencedSet(store, '{invoice:42}:status', 'priced', lock.fence, opts);
console.log('mark:', await highestFence(store, '{invoice:42}:status', opts));
await lock.release();
store.disconnect();
await redlock.close();
