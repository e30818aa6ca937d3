import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);

// Without renewal the lock is lost when its validity runs out.
const lock = await redlock.acquire('short', {
  ttl: 500,
  onLost: (err) => console.log('onLost:', err.code, err.message),
});
lock.signal.addEventListener('abort', () => {
  console.log(
    `signal aborted with ${lock.signal.reason.name}, ${lock.remaining().toFixed(1)} ms before the deadline`,
  );
});
await new Promise((resolve) => setTimeout(resolve, 700));
await lock.release(); // harmless for an expired lock
await redlock.close();
