import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
const name = `worker-${process.pid}`;

const leader = redlock.leader(
  'scheduler',
  {
    ttl: 3_000,
    onElected: (lock) => console.log(`${name} elected, fence ${lock.fence}`),
    onLost: (reason) => console.log(`${name} no longer leader: ${reason.message}`),
    // Without onError, rounds that cannot reach a majority are retried silently.
    onError: (error) => console.error(`${name} campaign error:`, error),
  },
  async (signal, lock) => {
    // The scheduled job: runs on exactly one worker at a time.
    while (!signal.aborted) {
      console.log(`${name} runs the job with fence ${lock.fence}`);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  },
);

// Run this file in two terminals, then stop one with Ctrl-C: the other takes
// over at once. Killed with SIGKILL instead, it takes over within about one ttl.
process.once('SIGINT', async () => {
  await leader.stop();
  await redlock.close();
});
setTimeout(() => process.emit('SIGINT'), 5_000); // so the example ends on its own
