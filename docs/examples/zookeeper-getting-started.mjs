import { connect } from 'quorumlock';

// An ensemble is one URL: zk://zk1:2181,zk2:2181,zk3:2181/locks
const url = process.env.ZOOKEEPER_URL ?? 'zk://127.0.0.1:2181/locks';
const locks = await connect(url, { ttl: 10_000 });
await locks.using('invoice:42', async (signal, lock) => {
  // lock.fence: the zxid that created this holder's lock node
  await chargeInvoice(42, { fence: lock.fence, signal });
});
await locks.close();

// A stand-in for your own work: it gets the lost-lock signal, and the fencing token to pass on.
/** @param {number} id @param {{ signal: AbortSignal, fence: number | undefined }} opts */
async function chargeInvoice(id, { signal, fence }) {
  signal.throwIfAborted();
  console.log(`charged invoice ${id} with fence ${fence}`);
}
