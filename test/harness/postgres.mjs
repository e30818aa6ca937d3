// A real PostgreSQL 15 server for tests, the demo and the bench: Debian's
// binaries (/usr/lib/postgresql/15/bin), a fresh cluster in a temp dir owned by
// the `postgres` user (initdb and the server refuse to run as root, so both run
// as that user: the child's uid is switched, as `runuser -u postgres` would,
// which keeps the server's own pid in our hands), listening on a free
// 127.0.0.1 port with trust authentication. Stopped by pid: the postmaster
// and its children (each backend is a process of its own session, so a signal
// to the postmaster's process group would not reach them).
import { execFile } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePorts, HOST, removeDir, spawnServer, stopChild, tempDir } from './processes.mjs';

const run = promisify(execFile);

/** Where Debian's PostgreSQL binaries live; PG_BIN overrides. */
export function postgresBin() {
  const dirs = [process.env.PG_BIN, '/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'postgres'), constants.X_OK);
      return dir;
    } catch {
      // Keep looking.
    }
  }
  throw new Error(
    "PostgreSQL is needed for these tests: install Debian's package (`apt-get install postgresql`) so /usr/lib/postgresql/15/bin/postgres exists, or set PG_BIN",
  );
}

/** The uid/gid to run as: the `postgres` user when we are root, else ourselves. */
function runAs() {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line)
    throw new Error(
      "running as root needs a `postgres` user (Debian's postgresql package creates it)",
    );
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Starts a fresh PostgreSQL server; resolves once it accepts connections.
 * @param {{ settings?: Record<string, string | number> }} [opts] extra `-c name=value` settings
 */
export async function startPostgres(opts = {}) {
  const bin = postgresBin();
  const owner = runAs();
  const dir = tempDir('quorumlock-pg-', owner);
  const data = join(dir, 'data');
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C', HOME: dir };
  await run(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'],
    { ...owner, env, cwd: dir },
  );
  const [port] = await freePorts(1);
  const settings = {
    listen_addresses: HOST,
    port,
    unix_socket_directories: dir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: 200,
    shared_buffers: '16MB',
    ...opts.settings,
  };
  const args = ['-D', data];
  for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
  let child = await start();
  const url = `postgres://postgres@${HOST}:${port}/postgres`;
  let stopping;

  async function start() {
    return spawnServer(join(bin, 'postgres'), args, {
      ...owner,
      env,
      cwd: dir,
      name: 'PostgreSQL',
      ready: /database system is ready to accept connections/,
    });
  }

  /** Signals the postmaster and every process it forked (backends, background workers). */
  function group(signal) {
    for (const pid of [child.pid, ...childrenOf(child.pid)]) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
  }

  return {
    host: HOST,
    port,
    url,
    dir,
    get pid() {
      return child.pid;
    },
    /** Freezes the server and every backend (SIGSTOP). */
    pause() {
      group('SIGSTOP');
    },
    resume() {
      group('SIGCONT');
    },
    /** Crash: SIGKILL to the postmaster and its backends; resolves once it has exited. */
    async kill() {
      group('SIGCONT');
      group('SIGKILL');
      await stopChild(child, 'SIGKILL');
    },
    /** Starts the server again on the same port with the same data. */
    async restart() {
      await this.kill();
      // Backends killed with their postmaster leave shared memory behind for a moment.
      child = await start();
    },
    /** Runs SQL with psql as the superuser; resolves with its output. */
    async sql(text) {
      const { stdout } = await run(
        join(bin, 'psql'),
        [
          '-h',
          HOST,
          '-p',
          String(port),
          '-U',
          'postgres',
          '-d',
          'postgres',
          '-XAtq',
          '-v',
          'ON_ERROR_STOP=1',
          '-c',
          text,
        ],
        { env },
      );
      return stdout.trim();
    },
    /** Fast shutdown and removal of the data dir; safe to call twice. */
    stop() {
      stopping ??= (async () => {
        group('SIGCONT');
        await stopChild(child, 'SIGINT');
        removeDir(dir);
      })();
      return stopping;
    },
  };
}

/** Pids of the processes whose parent is `pid`, from /proc. */
function childrenOf(pid) {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command may contain spaces and parentheses: fields resume after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}
