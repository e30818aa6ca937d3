// A real MariaDB server for tests, the demo and the bench: `mariadbd` from
// Debian's mariadb-server (10.11), a fresh datadir made by mariadb-install-db
// in a temp dir, a free 127.0.0.1 port, and a user `quorumlock` (no password,
// all privileges) for TCP clients. Stopped by pid.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePorts, HOST, removeDir, spawnServer, stopChild, tempDir } from './processes.mjs';

const run = promisify(execFile);

function which(names) {
  for (const name of names) {
    for (const dir of ['/usr/sbin', '/usr/bin', ...(process.env.PATH ?? '').split(':')]) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // Keep looking.
      }
    }
  }
  throw new Error(
    `MariaDB is needed for these tests: install Debian's package (\`apt-get install mariadb-server\`) so ${names[0]} exists`,
  );
}

/** Starts a fresh MariaDB server; resolves once it accepts connections and the test user exists. */
export async function startMySql() {
  const mariadbd = which(['mariadbd', 'mysqld']);
  const install = which(['mariadb-install-db', 'mysql_install_db']);
  const client = which(['mariadb', 'mysql']);
  const dir = tempDir('quorumlock-mysql-');
  const data = join(dir, 'data');
  const socket = join(dir, 'sock');
  await run(install, [
    '--no-defaults',
    `--datadir=${data}`,
    '--user=root',
    '--auth-root-authentication-method=socket',
    '--skip-test-db',
    '--skip-name-resolve',
  ]);
  const [port] = await freePorts(1);
  const args = [
    '--no-defaults',
    `--datadir=${data}`,
    `--socket=${socket}`,
    `--port=${port}`,
    `--bind-address=${HOST}`,
    `--pid-file=${join(dir, 'pid')}`,
    '--user=root',
    '--skip-log-bin',
    '--skip-name-resolve',
    '--innodb-buffer-pool-size=16M',
    '--innodb-flush-log-at-trx-commit=0',
    '--innodb-doublewrite=0',
    '--max-connections=300',
  ];
  const start = () =>
    spawnServer(mariadbd, args, { name: 'MariaDB', ready: /ready for connections/ });
  let child = await start();
  const sql = async (text) => {
    const { stdout } = await run(client, [
      '--no-defaults',
      `--socket=${socket}`,
      '-uroot',
      '-N',
      '-B',
      '-e',
      text,
    ]);
    return stdout.trim();
  };
  await sql(
    "CREATE USER 'quorumlock'@'%'; GRANT ALL ON *.* TO 'quorumlock'@'%' WITH GRANT OPTION; CREATE DATABASE app",
  );
  const url = `mysql://quorumlock@${HOST}:${port}/app`;
  let stopping;
  return {
    host: HOST,
    port,
    url,
    dir,
    get pid() {
      return child.pid;
    },
    /** Freezes the server (SIGSTOP): connections stay open and nothing is answered. */
    pause() {
      process.kill(child.pid, 'SIGSTOP');
    },
    resume() {
      try {
        process.kill(child.pid, 'SIGCONT');
      } catch {
        // Already gone.
      }
    },
    /** Crash (SIGKILL); resolves once it has exited. */
    async kill() {
      this.resume();
      await stopChild(child, 'SIGKILL');
    },
    /** Starts the server again on the same port with the same data. */
    async restart() {
      await this.kill();
      child = await start();
    },
    /** Runs SQL as root over the server's socket; resolves with its output. */
    sql,
    /** Shutdown and removal of the datadir; safe to call twice. */
    stop() {
      stopping ??= (async () => {
        this.resume();
        await stopChild(child, 'SIGTERM');
        removeDir(dir);
      })();
      return stopping;
    },
  };
}
