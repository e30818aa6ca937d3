import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const holder = new Redlock(nodes);
const waiter = new Redlock(nodes, { retry: { minDelay: 5_000, maxDelay: 5_000 } });

const held = await holder.acquire('queue-head', { ttl: 10_000 });
const waiting = waiter.acquire('queue-head');
await new Promise((resolve) => setTimeout(resolve, 500));
const releasedAt = performance.now();
await held.release();
const lock = await waiting;
console.log(`handed over ${(performance.now() - releasedAt).toFixed(1)} ms after the release`);
await lock.release();

// A holder that never releases: the waiter wakes when the key expires.
const start = performance.now();
await holder.acquire('queue-head', { ttl: 300 });
const next = await waiter.acquire('queue-head');
console.log(`taken ${(performance.now() - start - 300).toFixed(1)} ms after the key's expiry`);
await next.release();
await Promise.all([holder.close(), waiter.close()]);
