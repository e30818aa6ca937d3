const { Redlock } = require('quorumlock');

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes, { ttl: 30_000 });

async function main() {
  const lock = await redlock.acquire('report:daily', { wait: 5_000 });
  try {
    console.log('holding report:daily with fence', lock.fence);
  } finally {
    await lock.release();
  }
  await redlock.close();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
