import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes, { ttl: 30_000 });

// Hold a lock for a critical section, renewed while it runs; signal aborts if it is lost.
const total = await redlock.using('invoice:42', { ttl: 10_000 }, async (signal, lock) => {
  return chargeInvoice(42, { signal, fence: lock.fence });
});
console.log('charged', total);

// Or by hand: wait up to 5 s, release when done (or `await using` in TypeScript).
const lock = await redlock.acquire('report:daily', { wait: 5_000 });
try {
  await buildReport(lock.signal);
} finally {
  await lock.release();
}

await redlock.close();

// Stand-ins for your own work: each gets the lost-lock signal, and the fencing token to pass on.
/** @param {number} id @param {{ signal: AbortSignal, fence: number | undefined }} opts */
async function chargeInvoice(id, { signal, fence }) {
  signal.throwIfAborted();
  return { id, fence };
}
/** @param {AbortSignal} signal */
async function buildReport(signal) {
  signal.throwIfAborted();
}
