/**
 * A Redis Cluster as one node, for real: three masters joined by
 * `redis-cli --cluster create`, passed to Redlock as one ioredis Cluster.
 * Locks, renewal, multi-resource locks in one slot and fences work through
 * it; resources in several slots, and cluster masters listed as independent
 * nodes, are reported clearly.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { QuorumError, Redlock } from '../../src/index.js';
import { type RedisCluster, startCluster } from '../harness/cluster.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';
import { nextExtend } from '../harness/rounds.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const execFileAsync = promisify(execFile);

let cluster: RedisCluster;
let plain: Ensemble;

beforeAll(async () => {
  [cluster, plain] = await Promise.all([startCluster(3), startEnsemble({ size: 2 })]);
}, 60_000);

afterAll(async () => {
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

afterEach(async () => {
  await Promise.all([cluster.flush(), ...plain.nodes.map((n) => n.flush())]);
});

/** Runs the built `quorumlock doctor` on `urls`; resolves with its exit code and stdout. */
function doctor(urls: readonly string[]): Promise<{ code: number; stdout: string }> {
  return execFileAsync(process.execPath, [CLI, 'doctor', '--nodes', urls.join(',')]).then(
    ({ stdout }) => ({ code: 0, stdout }),
    (err: { code: number; stdout: string }) => err,
  );
}

describe('a Redis Cluster as one node', () => {
  it('acquires, renews, locks resources of one slot together and hands out increasing fences', async () => {
    const client = cluster.client();
    // A renewal every second or so; a ttl long enough for a loaded machine to keep the lock.
    const redlock = new Redlock([client], { ttl: 3_000 });
    try {
      const renewed = nextExtend('{order:7}:invoice');
      const lock = await redlock.acquire('{order:7}:invoice', { renew: true });
      await renewed;
      expect(lock.signal.aborted).toBe(false);
      await lock.release();

      const both = await redlock.acquire(['{order:7}:a', '{order:7}:b']);
      expect(Object.keys(both.fences ?? {}).sort()).toEqual(['{order:7}:a', '{order:7}:b']);
      // Held: another client cannot take either resource.
      const other = new Redlock([cluster.client()], { ttl: 3_000 });
      try {
        expect(await other.tryAcquire('{order:7}:b')).toBeNull();
      } finally {
        await other.close();
      }
      await both.release();

      const first = await redlock.acquire('{order:8}:fenced');
      await first.release();
      const second = await redlock.acquire('{order:8}:fenced');
      await second.release();
      expect(second.fence).toBeGreaterThan(first.fence!);
    } finally {
      await redlock.close();
      client.disconnect();
    }
  });

  it('counts as one node beside independent masters', async () => {
    const client = cluster.client();
    // A quorum of all three: the lock is held only if the cluster said yes too.
    const redlock = new Redlock([client, ...plain.urls], { ttl: 3_000, quorum: 3 });
    try {
      const lock = await redlock.acquire('mixed:job');
      const state = await redlock.inspect('mixed:job');
      expect(state.nodes.map((n) => n.value)).toEqual([lock.value, lock.value, lock.value]);
      await lock.release();
    } finally {
      await redlock.close();
      client.disconnect();
    }
  });

  it('says to use a hash tag when the resources of one lock are in different slots, and writes nothing', async () => {
    const client = cluster.client();
    const redlock = new Redlock([client], { ttl: 3_000 });
    try {
      const error = await redlock.acquire(['invoice:1', 'invoice:2'], { wait: 0 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      // An acquire that gives up at once wraps the round's QuorumError.
      const quorum = error instanceof QuorumError ? error : (error as Error).cause;
      expect(quorum).toBeInstanceOf(QuorumError);
      expect((quorum as QuorumError).message).toMatch(/CROSSSLOT/);
      expect((quorum as QuorumError).message).toMatch(/common hash tag/);
      expect((quorum as QuorumError).message).not.toMatch(/majority of the Redis nodes are up/);
      for (const master of cluster.masters) expect(await master.keys()).toEqual([]);
    } finally {
      await redlock.close();
      client.disconnect();
    }
  });

  it('doctor says cluster masters are not independent nodes and what to do instead', async () => {
    const r = await doctor(cluster.urls);
    expect(r.code).toBe(1);
    const clusterLines = r.stdout.split('\n').filter((l) => /^\s+fail\s+cluster\s/.test(l));
    expect(clusterLines).toHaveLength(3);
    expect(r.stdout).toMatch(/part of a Redis Cluster \(state ok, 16384 of 16384 slots served\)/);
    expect(r.stdout).toMatch(/new Redlock\(\[new Cluster/);
    // The EVALSHA probe's MOVED is not mistaken for scripting being disabled.
    expect(r.stdout).not.toMatch(/EVALSHA: MOVED/);
  });

  it('doctor reports hash slots that no master serves', async () => {
    const port = cluster.ports[0]!;
    const admin = new Redis({ host: '127.0.0.1', port });
    // This master's own slot ranges, taken away and given back at the end.
    const ranges = (await admin.cluster('SLOTS'))
      .filter(([, , owner]) => owner?.[1] === port)
      .map(([start, end]) => [start, end] as const);
    const taken = ranges.reduce((n, [start, end]) => n + end - start + 1, 0);
    expect(taken).toBeGreaterThan(0);
    try {
      for (const [start, end] of ranges) await admin.cluster('DELSLOTSRANGE', start, end);
      const r = await doctor([`redis://127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^\s+fail\s+cluster-slots\s/m);
      expect(r.stdout).toContain(`${taken} of 16384 hash slots are not served`);
      expect(r.stdout).toContain('redis-cli --cluster check');
    } finally {
      for (const [start, end] of ranges) await admin.cluster('ADDSLOTSRANGE', start, end);
      admin.disconnect();
    }
  });
});
