import { connect } from 'quorumlock';

// or: import { PostgresLocks } from 'quorumlock/postgres'; new PostgresLocks(url, options)

const url = process.env.POSTGRES_URL ?? 'postgres://app@127.0.0.1:5432/app';
const locks = await connect(url, { ttl: 15_000 });
await locks.using('invoice:42', async (signal, lock) => {
  await chargeInvoice(42, { signal, fence: lock.fence });
});
await locks.close();

// A stand-in for your own work: it gets the lost-lock signal, and the fencing token to pass on.
/** @param {number} id @param {{ signal: AbortSignal, fence: number | undefined }} opts */
async function chargeInvoice(id, { signal, fence }) {
  signal.throwIfAborted();
  console.log(`charged invoice ${id} with fence ${fence}`);
}
