import { LockError, Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
const held = await redlock.acquire('errors-demo');
for (const attempt of [
  () => redlock.acquire('errors-demo', { wait: 200 }),
  () => redlock.acquire('', {}),
  () => redlock.acquire('errors-demo', { signal: AbortSignal.timeout(100) }),
]) {
  try {
    await attempt();
  } catch (err) {
    if (err instanceof LockError) {
      const cause = err.cause instanceof LockError ? ` (cause: ${err.cause.code})` : '';
      console.log(`${err.code} - ${err.message}${cause}`);
    } else {
      // An aborted signal rejects with the signal's own reason, not a LockError.
      console.log('not a LockError:', err instanceof Error ? err.name : err);
    }
  }
}
await held.release();
await redlock.close();
const closed = await redlock.acquire('errors-demo').catch((err) => err);
console.log(closed.code);
