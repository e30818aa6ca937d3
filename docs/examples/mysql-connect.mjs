import { connect } from 'quorumlock';

// or: import { MySqlLocks } from 'quorumlock/mysql'; new MySqlLocks(url, options)

const url = process.env.MYSQL_URL ?? 'mysql://app:secret@127.0.0.1:3306/app'; // or mariadb://
const locks = await connect(url);
const lock = await locks.acquire('invoice:42', { wait: 5_000 });
try {
  console.log(`holding invoice:42 with fence ${lock.fence}`);
} finally {
  await lock.release();
}
await locks.close();
