import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
// At most 2 encoders at once, across every process that uses this name and limit.
const encoders = redlock.semaphore('encoders', { limit: 2 });

let running = 0;
let most = 0;
await Promise.all(
  ['a.mp4', 'b.mp4', 'c.mp4', 'd.mp4', 'e.mp4'].map((file) =>
    encoders.using({ ttl: 5_000 }, async (signal, permit) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 100)); // encode `file`
      signal.throwIfAborted();
      running--;
      console.log(`encoded ${file} with fence ${permit.fence}`);
    }),
  ),
);
console.log(`5 files encoded, at most ${most} at once`);

const first = await encoders.acquire();
const second = await encoders.acquire({ ttl: 10_000 });
console.log('a third permit while two are held:', await encoders.tryAcquire());
await first.release();
const third = await encoders.acquire({ wait: 5_000 }); // waiters are served in order
console.log('after a release:', third.held);
await Promise.all([second.release(), third.release()]);
await redlock.close();
