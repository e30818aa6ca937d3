/**
 * `quorumlock doctor`, `status` and `run` on a zk:// URL, built
 * (dist/cli/main.js), against a real 3-server ensemble.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderStatusReport } from '../../src/cli/backends.js';
import type { DoctorReport } from '../../src/cli/doctor.js';
import { type ZkLockState, ZooKeeperLocks } from '../../src/zookeeper/index.js';
import { requireBuiltCli, runCli } from '../harness/cli.js';
import { startZooKeeper, type ZooKeeper } from '../harness/zookeeper.mjs';

/** Runs the command with the ensemble's URL in QUORUMLOCK_NODES. */
function cli(args: string[], url: string) {
  return runCli(args, { QUORUMLOCK_NODES: url });
}

let zk: ZooKeeper;
let url: string;
beforeAll(async () => {
  requireBuiltCli();
  zk = await startZooKeeper({ size: 3 });
  url = zk.url('/cli');
});
afterAll(() => zk?.stop());

describe('quorumlock CLI on zk://', () => {
  it('doctor passes a healthy ensemble: quorum, one leader, session bounds', async () => {
    const r = await cli(['doctor', '--json', '--ttl', '3s'], url);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(report.ok).toBe(true);
    expect(report.quorum).toBe(2);
    const names = report.ensemble.map((c) => `${c.name}:${c.status}`);
    expect(names).toEqual(['quorum:pass', 'leader:pass', 'failures:pass', 'client:pass']);
    expect(report.ensemble.find((c) => c.name === 'leader')?.detail).toMatch(
      /\(leader\), 2 followers in sync$/,
    );
    for (const node of report.nodes) {
      expect(node.checks.map((c) => c.name)).toEqual([
        'reachable',
        'serving',
        'version',
        'session',
      ]);
    }
  });

  it('status shows the holder and fence; run passes the fence to the command', async () => {
    const locks = new ZooKeeperLocks(url, { ttl: 3000 });
    try {
      const lock = await locks.acquire('job');
      const held = await cli(['status', '--json', 'job'], url);
      expect(held.code).toBe(0);
      const report = JSON.parse(held.stdout) as ProviderStatusReport;
      expect(report.verdict).toBe('held');
      expect(report.state.holder).toBe(lock.value);
      expect((report.state as ZkLockState).fence).toBe(lock.fence);
      const busy = await cli(['run', '--ttl', '3s', 'job', '--', 'true'], url);
      expect(busy.code).toBe(75);
      await lock.release();
      const ran = await cli(
        [
          'run',
          '--ttl',
          '3s',
          '--grace',
          '200ms',
          'job',
          '--',
          'sh',
          '-c',
          'echo "$QUORUMLOCK_FENCE"',
        ],
        url,
      );
      expect(ran.code).toBe(0);
      expect(Number(ran.stdout.trim())).toBeGreaterThan(lock.fence!);
    } finally {
      await locks.close();
    }
  });

  it('doctor fails without quorum, and run exits 69', async () => {
    await zk.servers[0]!.kill();
    await zk.servers[1]!.kill();
    const r = await cli(['doctor', '--json'], url);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(report.ensemble.find((c) => c.name === 'quorum')?.status).toBe('fail');
    const run = await cli(['run', '--ttl', '3s', 'job', '--', 'true'], url);
    expect(run.code).toBe(69);
  });
});
