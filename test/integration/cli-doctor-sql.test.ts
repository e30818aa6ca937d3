/**
 * `quorumlock doctor` and `status` on postgres:// and mysql:// URLs, as users
 * run them (dist/cli/main.js), against real servers.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/index.js';
import { startMySql } from '../harness/mysql.mjs';
import { startPostgres } from '../harness/postgres.mjs';
import type { DatabaseServer } from '../harness/processes.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface Report {
  ok: boolean;
  nodes: Array<{ checks: Array<{ name: string; status: string; fix?: string }> }>;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH },
  }).then(
    (r) => ({ ...r, code: 0 }),
    (err: { stdout: string; stderr: string; code: number }) => err,
  );
}

async function doctor(url: string): Promise<{ code: number; report: Report }> {
  const { stdout, stderr, code } = await cli(['doctor', '--json', '--nodes', url]);
  if (!stdout.startsWith('{'))
    throw new Error(`doctor printed no report (exit ${code}): ${stderr}`);
  return { code, report: JSON.parse(stdout) as Report };
}

const statuses = (report: Report) =>
  Object.fromEntries(report.nodes[0]!.checks.map((c) => [c.name, c.status]));

const backends: Array<[string, () => Promise<DatabaseServer>, string, (port: number) => string]> = [
  [
    'PostgreSQL',
    startPostgres,
    'CREATE ROLE app LOGIN',
    (port) => `postgres://app@127.0.0.1:${port}/postgres`,
  ],
  [
    'MariaDB',
    startMySql,
    "CREATE USER 'app'@'%'; GRANT SELECT ON app.* TO 'app'@'%'",
    (port) => `mysql://app@127.0.0.1:${port}/app`,
  ],
];

for (const [name, startServer, limitedRole, limitedUrl] of backends) {
  describe(`quorumlock doctor on ${name}`, () => {
    let server: DatabaseServer;
    beforeAll(async () => {
      if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
      server = await startServer();
      await server.sql(limitedRole);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('passes a direct connection to a writable primary whose role may create the fence table', async () => {
      const { code, report } = await doctor(server.url);
      expect(code).toBe(0);
      expect(report.ok).toBe(true);
      expect(statuses(report)).toMatchObject({
        reachable: 'pass',
        primary: 'pass',
        session: 'pass',
        'fence table': 'pass',
      });
    });

    it('fails a role that cannot create the fence table, with the migration as the fix', async () => {
      const { code, report } = await doctor(limitedUrl(server.port));
      expect(code).toBe(1);
      const fence = report.nodes[0]!.checks.find((c) => c.name === 'fence table')!;
      expect(fence.status).toBe('fail');
      expect(fence.fix).toMatch(/CREATE TABLE quorumlock_fence/);
      expect(statuses(report).session).toBe('pass');
    });

    // Last: its lock creates the fence table.
    it('status shows the holder, its session and its fence while a lock is held, and FREE after', async () => {
      const provider = await connect(server.url);
      try {
        const lock = await provider.acquire('status:job');
        const held = await cli(['status', '--json', '--nodes', server.url, 'status:job']);
        expect(JSON.parse(held.stdout)).toMatchObject({
          verdict: 'held',
          state: { holder: lock.value, fence: lock.fence },
        });
        await lock.release();
        const free = await cli(['status', '--json', '--nodes', server.url, 'status:job']);
        expect(JSON.parse(free.stdout)).toMatchObject({ verdict: 'free', state: { holder: null } });
      } finally {
        await provider.close();
      }
    });
  });
}
