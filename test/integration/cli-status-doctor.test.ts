/**
 * `quorumlock status` and `quorumlock doctor`, built (dist/cli/main.js), on
 * healthy real redis-server masters and on misconfigured ones.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../src/cli/doctor.js';
import type { StatusReport } from '../../src/cli/status.js';
import { Redlock } from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

function check(report: DoctorReport, node: string, name: string) {
  return report.nodes.find((n) => n.node === node)?.checks.find((c) => c.name === name);
}

let ensemble: Ensemble;
let nodes: string;
let labels: string[];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  ensemble = await startEnsemble({ size: 3, appendonly: true });
  nodes = ensemble.urls.join(',');
  labels = ensemble.nodes.map((n) => `127.0.0.1:${n.port}`);
});

afterAll(async () => {
  await ensemble?.stop();
});

describe('quorumlock status', () => {
  it('reports a free resource on every node', async () => {
    const r = await cli(['status', '--json', 'never-taken'], { QUORUMLOCK_NODES: nodes });
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as StatusReport;
    expect(report.verdict.state).toBe('free');
    expect(report.nodes.map((n) => n.node)).toEqual(labels);
    expect(report.nodes.every((n) => n.reachable && n.value === null)).toBe(true);
  });

  it('shows the holder, its ttl and fence counter per node, and the quorum verdict', async () => {
    const redlock = new Redlock(ensemble.urls);
    const lock = await redlock.acquire('held', { ttl: 20_000 });
    try {
      const r = await cli(['status', '--json', '--nodes', nodes, 'held']);
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as StatusReport;
      expect(report.verdict).toMatchObject({ state: 'held', holder: lock.value, quorum: 2 });
      // A node that answered after the round was decided may have seeded a higher counter;
      // a quorum carries at least the token the holder got.
      expect(report.verdict.maxFence).toBeGreaterThanOrEqual(lock.fence!);
      expect(
        report.nodes.filter((n) => n.fence !== null && n.fence >= lock.fence!).length,
      ).toBeGreaterThanOrEqual(2);
      for (const n of report.nodes.filter((n) => n.value !== null)) {
        expect(n.value).toBe(lock.value);
        expect(n.pttl).toBeGreaterThan(0);
        expect(n.pttl).toBeLessThanOrEqual(20_000);
      }
      const text = await cli(['status', '--nodes', nodes, 'held']);
      expect(text.stdout).toMatch(/verdict: HELD by .+ expires in \d+ ms/);
      expect(text.stdout).toContain(lock.value.slice(0, 12));
    } finally {
      await lock.release();
      await redlock.close();
    }
  });

  it('marks a stopped node unreachable and exits 69 when too few answer', async () => {
    const closed = 'redis://127.0.0.1:1';
    const twoOfThree = `${ensemble.urls[0]},${ensemble.urls[1]},${closed}`;
    const one = await cli(['status', '--json', '--nodes', twoOfThree, 'x']);
    // Two of three answer: still a verdict, with the closed node unreachable.
    expect(one.code).toBe(0);
    const report = JSON.parse(one.stdout) as StatusReport;
    expect(report.nodes[2]).toMatchObject({ node: '127.0.0.1:1', reachable: false });
    expect(report.verdict.state).toBe('free');

    const majorityDown = await cli([
      'status',
      '--nodes',
      `${ensemble.urls[0]},redis://127.0.0.1:1,redis://127.0.0.1:2`,
      'x',
    ]);
    expect(majorityDown.code).toBe(69);
    expect(majorityDown.stdout).toMatch(/NO QUORUM: only 1 nodes answered, 2 needed/);
  });
});

describe('quorumlock doctor', () => {
  it('passes healthy, independent, persistent masters', async () => {
    const r = await cli(['doctor', '--json', '--nodes', nodes]);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(report.counts.fail).toBe(0);
    expect(r.code).toBe(0);
    for (const label of labels) {
      for (const name of ['reachable', 'role', 'eviction', 'persistence', 'scripts']) {
        expect(check(report, label, name)?.status, `${label} ${name}`).toBe('pass');
      }
    }
    expect(report.ensemble.find((c) => c.name === 'clocks')?.status).toBe('pass');
    const text = await cli(['doctor', '--nodes', nodes]);
    expect(text.stdout).toMatch(/^ok: \d+ pass, 0 warn, 0 fail/m);
  });

  it('fails an evicting node and a replica of a listed node, saying how to fix each', async () => {
    const [first, second, third] = ensemble.nodes;
    const lru = second!.client();
    const replica = third!.client();
    try {
      await lru.config('SET', 'maxmemory-policy', 'allkeys-lru');
      await lru.config('SET', 'maxmemory', '100mb');
      await replica.replicaof('127.0.0.1', first!.port);
      const r = await cli(['doctor', '--json', '--nodes', nodes]);
      expect(r.code).toBe(1);
      const report = JSON.parse(r.stdout) as DoctorReport;
      expect(report.ok).toBe(false);

      const eviction = check(report, labels[1]!, 'eviction')!;
      expect(eviction.status).toBe('fail');
      expect(eviction.detail).toMatch(/allkeys-lru/);
      expect(eviction.fix).toMatch(/maxmemory-policy noeviction/);

      const role = check(report, labels[2]!, 'role')!;
      expect(role.status).toBe('fail');
      expect(role.detail).toMatch(/replica of 127\.0\.0\.1:/);
      expect(role.fix).toMatch(/REPLICAOF NO ONE/);
      const independent = check(report, labels[2]!, 'independent')!;
      expect(independent.status).toBe('fail');
      expect(independent.detail).toContain(`replicates from listed node ${labels[0]}`);
      // The master warns that it has a replica attached (or will once the link is up).
      expect(check(report, labels[0]!, 'role')?.status).toBe('pass');
      expect(report.ensemble.find((c) => c.name === 'quorum')?.status).toBe('fail');

      const text = await cli(['doctor', '--nodes', nodes]);
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/fail\s+eviction\s+maxmemory-policy allkeys-lru/);
      expect(text.stdout).toMatch(/fix: CONFIG SET maxmemory-policy noeviction/);
      expect(text.stdout).toMatch(/^FAILED: /m);
    } finally {
      await replica.replicaof('NO', 'ONE');
      await lru.config('SET', 'maxmemory-policy', 'noeviction');
      await lru.config('SET', 'maxmemory', '0');
      lru.disconnect();
      replica.disconnect();
    }
  });

  it('warns about persistence that can lose locks, and fails a server listed twice', async () => {
    const node = ensemble.nodes[0]!;
    const client = node.client();
    try {
      await client.config('SET', 'appendfsync', 'everysec');
      const twice = `${nodes},redis://localhost:${node.port}`;
      const r = await cli(['doctor', '--json', '--nodes', twice]);
      const report = JSON.parse(r.stdout) as DoctorReport;
      expect(r.code).toBe(1);
      const persistence = check(report, labels[0]!, 'persistence')!;
      expect(persistence.status).toBe('warn');
      expect(persistence.fix).toMatch(/appendfsync always/);
      expect(check(report, `localhost:${node.port}`, 'distinct')?.status).toBe('fail');
      expect(report.ensemble.find((c) => c.name === 'size')?.status).toBe('warn');
    } finally {
      await client.config('SET', 'appendfsync', 'always');
      client.disconnect();
    }
  });

  it('fails an unreachable node with the fix, and exits 1', async () => {
    const r = await cli(['doctor', '--timeout', '1s', '--nodes', `${nodes},redis://127.0.0.1:1`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/127\.0\.0\.1:1\n\s+fail\s+reachable/);
    expect(r.stdout).toMatch(/fix: check the URL/);
  });
});

describe('a least-privilege ACL user', () => {
  // The exact rule docs/operations.md gives; scripts' own commands need permission too.
  const RULE =
    'on >s3cret resetkeys ~quorumlock:* resetchannels &quorumlock:* -@all ' +
    '+evalsha +eval +get +set +exists +pttl +pexpire +del +incr +time ' +
    '+zadd +zrem +zrange +zrangebyscore +zrank +zscore +publish ' +
    '+subscribe +unsubscribe +ping +info +hello +auth +script|load +config|get';

  it('can run, wait for, inspect and check locks with only the documented commands', async () => {
    for (const node of ensemble.nodes) {
      const admin = node.client();
      try {
        await admin.call('ACL', 'SETUSER', 'quorumlock', ...RULE.split(' '));
      } finally {
        admin.disconnect();
      }
    }
    const acl = ensemble.nodes
      .map((n) => `redis://quorumlock:s3cret@127.0.0.1:${n.port}`)
      .join(',');
    const env = { QUORUMLOCK_NODES: acl };
    const print = 'console.log(process.env.QUORUMLOCK_FENCE)';
    const [first, second] = await Promise.all([
      cli(
        ['run', 'acl-job', '--', process.execPath, '-e', `${print}; setTimeout(() => {}, 500)`],
        env,
      ),
      new Promise<Result>((resolve) =>
        setTimeout(
          () =>
            resolve(
              cli(['run', '--wait', '20s', 'acl-job', '--', process.execPath, '-e', print], env),
            ),
          200,
        ),
      ),
    ]);
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    expect(Number(first.stdout) > 0 && Number(second.stdout) > 0).toBe(true);

    const status = await cli(['status', '--json', 'acl-job'], env);
    expect(status.code).toBe(0);
    expect((JSON.parse(status.stdout) as StatusReport).nodes.every((n) => n.reachable)).toBe(true);

    const doctor = await cli(['doctor', '--json'], env);
    const report = JSON.parse(doctor.stdout) as DoctorReport;
    expect(report.counts).toMatchObject({ fail: 0, warn: 0 });
    expect(doctor.code).toBe(0);

    // And the rule is not wider than needed: a command outside it is refused.
    const probe = ensemble.nodes[0]!.client({ username: 'quorumlock', password: 's3cret' });
    try {
      await expect(probe.call('FLUSHALL')).rejects.toThrow(/NOPERM/);
      await expect(probe.get('other:key')).rejects.toThrow(/NOPERM/);
    } finally {
      probe.disconnect();
    }
  });
});
