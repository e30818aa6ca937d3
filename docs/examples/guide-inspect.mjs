import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
const lock = await redlock.acquire('inventory', { ttl: 5_000 });
const state = await redlock.inspect('inventory');
console.log(
  state.holder === lock.value,
  state.nodes.map((n) => `${n.node} pttl ${n.pttl} fence ${n.fence}`),
);
await lock.release();
await redlock.close();
