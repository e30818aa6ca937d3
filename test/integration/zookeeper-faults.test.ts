import diagnostics from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { channels, type Lock, LockError, LockLostError } from '../../src/index.js';
import { openZkClient, type ZkClient } from '../../src/zookeeper/client.js';
import { ZooKeeperLocks } from '../../src/zookeeper/index.js';
import { Child, hrNow } from '../fixtures/child.mjs';
import { startProxy } from '../harness/proxy.js';
import { startZooKeeper, type ZooKeeper } from '../harness/zookeeper.mjs';
import { type Acquisition, checkMutualExclusion, emptyHistory } from '../sim/checker.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

async function server(size = 1): Promise<ZooKeeper> {
  const zk = await startZooKeeper({ size });
  cleanups.push(() => zk.stop());
  return zk;
}

let single: Promise<ZooKeeper> | undefined;
/** One 1-node server for the tests that need no ensemble; each uses its own chroot. */
function oneServer(): Promise<ZooKeeper> {
  single ??= server();
  return single;
}

function locks(url: string, ttl: number): ZooKeeperLocks {
  const l = new ZooKeeperLocks(url, { ttl, retry: { minDelay: 5, maxDelay: 50 } });
  cleanups.push(() => l.close());
  return l;
}

async function rawClient(hosts: string): Promise<ZkClient> {
  const client = await openZkClient({ hosts, sessionTimeout: 4000, clock: systemClock });
  cleanups.push(() => client.close());
  while (client.state !== 'connected') await sleep(5);
  return client;
}

function lost(lock: Lock): Promise<unknown> {
  return new Promise((resolve) =>
    lock.signal.addEventListener('abort', () => resolve(lock.signal.reason), { once: true }),
  );
}

describe('ZooKeeper under faults', () => {
  it('keeps serving locks with one of three servers down; with two down, acquire fails with a typed error and a held lock is lost', async () => {
    const zk = await server(3);
    const a = locks(zk.url('/q'), 2000);
    const before = await a.acquire('r', { wait: 20_000 });
    await before.release();

    await zk.servers[0]!.kill();
    const b = locks(zk.url('/q'), 2000);
    for (const p of [a, b]) {
      const lock = await p.acquire('r', { wait: 20_000 });
      expect(lock.fence).toBeGreaterThan(before.fence!);
      await lock.release();
    }

    const held = await b.acquire('held', { wait: 20_000 });
    const gone = lost(held);
    await zk.servers[1]!.kill();
    expect(await gone).toBeInstanceOf(LockLostError);
    const error = await a.tryAcquire('other').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(LockError);
    expect((error as LockError).code).toBe('ERR_LOCK_QUORUM');
  });

  it("a blackholed holder's signal fires before anyone else gets the lock: no two holders", async () => {
    const zk = await oneServer();
    const proxy = await startProxy({ host: '127.0.0.1', port: zk.servers[0]!.port });
    cleanups.push(() => proxy.close());
    const ttl = 1000;
    const holder = locks(`zk://127.0.0.1:${proxy.port}/bh`, ttl);
    const other = locks(zk.url('/bh'), ttl);
    const history = emptyHistory();
    const record = (id: string, client: string, lock: Lock, startedAt: number): Acquisition => {
      const now = performance.now();
      const a: Acquisition = {
        id,
        client,
        resources: ['r'],
        startedAt,
        okAt: now,
        endedAt: now,
        fences: { ...lock.fences },
        deadlines: [{ at: now, until: now + lock.remaining() }],
        releasedAt: null,
        uses: [],
      };
      history.acquisitions.push(a);
      return a;
    };
    const started = performance.now();
    const lock = await holder.acquire('r');
    const mine = record('holder', 'holder', lock, started);
    // Every confirmation of the hold moves the deadline the holder believes in.
    const onExtend = (event: unknown) => {
      if ((event as { ok: boolean }).ok && lock.held) {
        const now = performance.now();
        mine.deadlines.push({ at: now, until: now + lock.remaining() });
      }
    };
    diagnostics.subscribe(channels.extend, onExtend);
    const gone = lost(lock).then((reason) => {
      // The holder stops acting on the lock here.
      mine.releasedAt = performance.now();
      return reason;
    });
    try {
      await sleep(ttl); // a few confirmations go through first
      proxy.blackhole(true);
      const startedOther = performance.now();
      const next = await other.acquire('r', { wait: 20_000 });
      const theirs = record('other', 'other', next, startedOther);
      expect(await gone).toBeInstanceOf(LockLostError);
      // The holder had stopped acting on the lock before the other client got it.
      expect(mine.releasedAt).not.toBeNull();
      expect(mine.releasedAt!).toBeLessThan(theirs.okAt!);
      expect(next.fence).toBeGreaterThan(lock.fence!);
      await next.release();
    } finally {
      diagnostics.unsubscribe(channels.extend, onExtend);
      proxy.blackhole(false);
    }
    expect(mine.deadlines.length).toBeGreaterThan(1);
    expect(checkMutualExclusion(history)).toEqual([]);
  });

  it('finds a create whose reply was lost again: no orphan blocks the next holder', async () => {
    const zk = await oneServer();
    const proxy = await startProxy({ host: '127.0.0.1', port: zk.servers[0]!.port });
    cleanups.push(() => proxy.close());
    const a = locks(`zk://127.0.0.1:${proxy.port}/lost`, 4000);
    const b = locks(zk.url('/lost'), 4000);
    const raw = await rawClient(zk.hosts);
    await a.inspect('warm'); // connected
    // B holds first, so the parent exists and A queues behind B.
    const first = await b.acquire('r');
    const requests: Array<{ op: string; path: string }> = [];
    const onRequest = (m: unknown) => requests.push(m as { op: string; path: string });
    diagnostics.subscribe('quorumlock:zookeeper:request', onRequest);
    let lock: Lock;
    try {
      // Each chunk takes a second each way: the create reaches the server, its reply is still on the way.
      proxy.setDelay(1000);
      const acquiring = a.acquire('r', { wait: 20_000 });
      while (((await raw.children('/lost/r')) ?? []).length < 2) await sleep(5);
      proxy.reset(); // the reply is lost with the connection
      proxy.setDelay(0);
      while ((await b.inspect('r')).waiting !== 1) await sleep(5);
      await first.release();
      lock = await acquiring;
    } finally {
      diagnostics.unsubscribe('quorumlock:zookeeper:request', onRequest);
    }
    const children = (await raw.children('/lost/r')) ?? [];
    expect(children).toHaveLength(1);
    // One create, found again by its protected name after the reconnect, not created twice.
    expect(requests.filter((r) => r.op === 'create' && r.path.startsWith('/lost/r/'))).toHaveLength(
      1,
    );
    const state = await b.inspect('r');
    expect(state.holder).toBe(lock.value);
    expect(state.fence).toBe(lock.fence);
    await lock.release();
    const next = await b.tryAcquire('r');
    expect(next).not.toBeNull();
    await next!.release();
    expect((await raw.children('/lost/r')) ?? []).toEqual([]);
  });
});

describe('a ZooKeeper holder paused past its session timeout', () => {
  it('is lost: the next holder acquires only after the paused one stopped believing it holds, and fences grow', async () => {
    const zk = await oneServer();
    const ttl = 1000;
    const holder = new Child('./zk-holder.mjs', { url: zk.url('/pause'), resource: 'r', ttl });
    cleanups.push(async () => holder.kill('SIGKILL'));
    const acquired = await holder.waitFor((e) => e.event === 'acquired', { timeoutMs: 30_000 });
    // Let a confirmation or two go through, then freeze the whole process.
    await holder.waitFor((e) => e.event === 'confirmed', { timeoutMs: 30_000 });
    holder.kill('SIGSTOP');
    const stoppedAt = hrNow();
    const other = locks(zk.url('/pause'), ttl);
    const next = await other.acquire('r', { wait: 20_000 });
    const nextAt = hrNow();
    holder.kill('SIGCONT');
    const lostEvent = await holder.waitFor((e) => e.event === 'lost', { timeoutMs: 30_000 });
    const history = emptyHistory();
    const deadlines = holder.events
      .filter((e) => e.event === 'acquired' || e.event === 'confirmed')
      .map((e) => ({ at: e.t, until: e.until as number }));
    history.acquisitions.push(
      {
        id: 'paused',
        client: 'paused',
        resources: ['r'],
        startedAt: acquired.t,
        okAt: acquired.t,
        endedAt: acquired.t,
        fences: { r: acquired.fence as number },
        deadlines,
        releasedAt: lostEvent.t,
        uses: [],
      },
      {
        id: 'next',
        client: 'next',
        resources: ['r'],
        startedAt: stoppedAt,
        okAt: nextAt,
        endedAt: nextAt,
        fences: { ...next.fences },
        deadlines: [{ at: nextAt, until: nextAt + next.remaining() }],
        releasedAt: null,
        uses: [],
      },
    );
    expect(checkMutualExclusion(history)).toEqual([]);
    expect(next.fence).toBeGreaterThan(acquired.fence as number);
    await next.release();
    expect((await holder.exited).code).toBe(0);
  });
});
