import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
const settings = redlock.readWriteLock('settings');

// Readers share.
const [a, b] = await Promise.all([settings.read.acquire(), settings.read.acquire()]);
console.log('two readers at once:', a.held && b.held);
console.log('a writer while they read:', await settings.write.tryAcquire());

// A writer that waits gets in as soon as the readers before it are done;
// readers that come after it wait behind it.
const writing = settings.write.acquire({ wait: 5_000 });
await Promise.all([a.release(), b.release()]);
const writer = await writing;
// Fencing is on by default, so every permit has a fence.
const before = Math.max(a.fence ?? 0, b.fence ?? 0);
console.log('writer fence above the readers before it:', (writer.fence ?? 0) > before);
console.log('a reader while it writes:', await settings.read.tryAcquire());
await writer.release();

const value = await settings.read.using(
  async (_signal, permit) => `read with fence ${permit.fence}`,
);
console.log(value);
await redlock.close();
