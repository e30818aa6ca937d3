import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');

await using redlock = new Redlock(nodes);
{
  await using lock = await redlock.acquire('account:1', { ttl: 5_000 });
  console.log('locked with fence', lock.fence);
} // released here
console.log('released:', (await redlock.inspect('account:1')).holder === null);
// redlock is closed at the end of the module
