/**
 * `quorumlock run` on the SQL backends, as users run it (dist/cli/main.js):
 * the child gets the token, and when the lock is lost the child gets SIGTERM
 * at least --grace before the lock's validity ends, SIGKILL only once the
 * grace has passed, and quorumlock exits 76.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMySql } from '../harness/mysql.mjs';
import { startPostgres } from '../harness/postgres.mjs';
import type { DatabaseServer } from '../harness/processes.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface Event {
  readonly event: string;
  readonly t: number;
  readonly [field: string]: unknown;
}

/** The child: records its start (pid, token) and the wall-clock time SIGTERM arrives, which it ignores. */
function recorder(file: string): string {
  return `
    const fs = require('node:fs');
    process.on('SIGTERM', () => fs.appendFileSync(${JSON.stringify(file)}, 'TERM ' + Date.now() + '\\n'));
    fs.writeFileSync(${JSON.stringify(file)}, 'START ' + process.pid + ' ' + process.env.QUORUMLOCK_FENCE + '\\n');
    console.log('ready');
    setInterval(() => {}, 1000);
  `;
}

/** Runs the CLI; resolves `ready` once the child printed it, `result` once quorumlock exited. */
function run(url: string, resource: string, file: string) {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'run',
      '--ttl',
      '4s',
      '--grace',
      '800ms',
      '--log',
      'json',
      resource,
      '--',
      process.execPath,
      '-e',
      recorder(file),
    ],
    { env: { PATH: process.env.PATH, QUORUMLOCK_NODES: url }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const ready = new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
  });
  const result = new Promise<{ code: number | null; events: Event[] }>((resolve) => {
    child.once('exit', (code) =>
      resolve({
        code,
        events: stderr
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Event),
      }),
    );
  });
  return { ready, result };
}

const backends: Array<[string, () => Promise<DatabaseServer>, string]> = [
  [
    'PostgreSQL',
    startPostgres,
    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted",
  ],
  ['MariaDB', startMySql, ''],
];

for (const [name, startServer, terminateSql] of backends) {
  describe(`quorumlock run on ${name}`, () => {
    let server: DatabaseServer;
    let dir: string;

    beforeAll(async () => {
      if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
      server = await startServer();
      dir = mkdtempSync(join(tmpdir(), 'quorumlock-cli-sql-'));
    });
    afterAll(async () => {
      server?.resume();
      await server?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** What the child and quorumlock recorded once the lock was lost. */
    async function lose(resource: string, fault: () => Promise<void> | void) {
      const file = join(dir, resource);
      const running = run(server.url, resource, file);
      await running.ready;
      const [, pid, fence] = readFileSync(file, 'utf8').split('\n')[0]!.split(' ');
      await fault();
      const { code, events } = await running.result;
      server.resume();
      const term = readFileSync(file, 'utf8')
        .split('\n')
        .find((l) => l.startsWith('TERM '));
      return { code, events, childPid: Number(pid), fence, sigtermAt: Number(term?.split(' ')[1]) };
    }

    it('gives the child the token; when the server stops answering, SIGTERM comes --grace before validity ends, SIGKILL after the grace, exit 76', async () => {
      const r = await lose('frozen', () => server.pause());
      expect(Number(r.fence)).toBeGreaterThan(0);
      expect(r.code).toBe(76);
      const lastValidity = Math.max(
        ...r.events
          .filter((e) => e.event === 'acquired' || e.event === 'extended')
          .map((e) => Number(e.validUntil)),
      );
      const terminating = r.events.find((e) => e.event === 'terminating')!;
      const killing = r.events.find((e) => e.event === 'killing')!;
      const exited = r.events.find((e) => e.event === 'exited')!;
      expect(Number.isFinite(r.sigtermAt)).toBe(true);
      // At least the whole grace between SIGTERM and the end of validity…
      expect(r.sigtermAt + 800).toBeLessThanOrEqual(lastValidity);
      // …and SIGKILL only once the grace has passed since SIGTERM was sent (ms clocks: 1 ms of rounding).
      expect(terminating.t).toBeLessThanOrEqual(r.sigtermAt);
      expect(killing.t - terminating.t).toBeGreaterThanOrEqual(799);
      expect(killing.t).toBeLessThanOrEqual(lastValidity);
      expect(exited.signal).toBe('SIGKILL');
      expect(r.events.at(-1)).toMatchObject({ event: 'exit', code: 76 });
    });

    it("kills the child and exits 76 when the server ends the lock's session", async () => {
      const sql =
        terminateSql ||
        "SELECT GROUP_CONCAT(CONCAT('KILL CONNECTION ', id) SEPARATOR ';') FROM information_schema.processlist WHERE user = 'quorumlock'";
      const r = await lose('terminated', async () => {
        const out = await server.sql(sql);
        if (!terminateSql) await server.sql(out);
      });
      expect(r.code).toBe(76);
      expect(Number.isFinite(r.sigtermAt)).toBe(true);
      expect(r.events.find((e) => e.event === 'lost')).toBeDefined();
      expect(r.events.find((e) => e.event === 'exited')!.signal).toBe('SIGKILL');
      expect(() => process.kill(r.childPid, 0)).toThrow();
    });

    // Last: the server stays down.
    it('kills the child and exits 76 when the server is killed', async () => {
      const r = await lose('server-killed', () => server.kill());
      expect(r.code).toBe(76);
      expect(Number.isFinite(r.sigtermAt)).toBe(true);
      expect(r.events.find((e) => e.event === 'exited')!.signal).toBe('SIGKILL');
    });
  });
}
