import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);

const rows = await redlock.using('nightly-report', { ttl: 2_000 }, async (signal, lock) => {
  let done = 0;
  // Work that takes longer than the ttl: renewal keeps the lock.
  for (let batch = 0; batch < 5; batch++) {
    signal.throwIfAborted(); // stop as soon as the lock is lost
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    done += 100;
  }
  console.log(`fence ${lock.fence}, ${Math.round(lock.remaining())} ms left`);
  return done;
});
console.log('rows:', rows);

const error = await redlock
  .using('nightly-report', async () => {
    throw new Error('the export failed');
  })
  .catch((err) => err);
console.log('using rejected with the routine error:', error.message);
await redlock.close();
