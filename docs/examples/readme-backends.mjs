import { connect } from 'quorumlock';

// Each backend's URL, from the environment or these local defaults.
const urls = {
  // Redlock over N masters
  redis:
    process.env.QUORUMLOCK_NODES ??
    'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383',
  // PostgreSQL advisory locks
  postgres: process.env.POSTGRES_URL ?? 'postgres://app@127.0.0.1:5432/app',
  // MySQL / MariaDB GET_LOCK
  mysql: process.env.MYSQL_URL ?? 'mysql://app:secret@127.0.0.1:3306/app',
  // ZooKeeper, one ensemble (zk://zk1:2181,zk2:2181,zk3:2181/locks)
  zookeeper: process.env.ZOOKEEPER_URL ?? 'zk://127.0.0.1:2181/locks',
};

for (const [backend, url] of Object.entries(urls)) {
  const locks = await connect(url);
  const fence = await locks.using('report:daily', async (_signal, lock) => lock.fence);
  console.log(`${backend}: held report:daily with fence ${fence}`);
  await locks.close();
}
