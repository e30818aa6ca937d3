import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);

const lock = await redlock.acquire('invoice:42');
console.log(lock.fence); // 1795691235171879: this holder's token for invoice:42
await lock.release();

const both = await redlock.acquire(['account:1', 'account:2']);
console.log(both.fences); // { 'account:1': 1795…210, 'account:2': 1795…977 }: one per resource
console.log(both.fence); // the token of the first resource, 'account:1'
await both.release();
await redlock.close();
