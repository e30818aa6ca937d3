import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);

const renewed = await redlock.acquire('export', { ttl: 1_000, renew: true });
await new Promise((resolve) => setTimeout(resolve, 3_000)); // 3× the ttl
console.log('still held after 3 s:', renewed.held, `${Math.round(renewed.remaining())} ms left`);
await renewed.release();

const manual = await redlock.acquire('import', { ttl: 1_000 });
await manual.extend(5_000); // now valid for about 5 s from the extend round's start
console.log(`extended: ${Math.round(manual.remaining())} ms left`);
await manual.extend(500); // a shorter ttl never shortens the lock
console.log(`after extend(500): ${Math.round(manual.remaining())} ms left`);
await manual.release();
await redlock.close();
