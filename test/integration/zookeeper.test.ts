import diagnostics from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import {
  AcquireTimeoutError,
  connect,
  type Lock,
  LockLostError,
  type LockProvider,
} from '../../src/index.js';
import { openZkClient } from '../../src/zookeeper/client.js';
import { type ZkLockState, ZooKeeperLocks } from '../../src/zookeeper/index.js';
import { startZooKeeper, type ZooKeeper } from '../harness/zookeeper.mjs';

let zk: ZooKeeper;
const open: LockProvider[] = [];
let chroots = 0;

/**
 * A provider on its own session; `base` shares a chroot between providers of
 * one test. The longest session the harness grants, so a busy machine does not
 * suspend it.
 */
function locks(base: string, ttl = 4000): ZooKeeperLocks {
  const l = new ZooKeeperLocks(zk.url(base), { ttl });
  open.push(l);
  return l;
}
function freshBase(): string {
  return `/t${++chroots}`;
}

beforeAll(async () => {
  zk = await startZooKeeper();
});
afterAll(async () => {
  await Promise.all(open.map((l) => l.close()));
  await zk?.stop();
});

/** Waits until `resource` has `n` clients queued behind its holder. */
async function queued(by: ZooKeeperLocks, resource: string, n: number): Promise<void> {
  while ((await by.inspect(resource)).waiting !== n) await sleep(5);
}

describe('ZooKeeperLocks', () => {
  it('acquires and releases, with fences that grow across holders', async () => {
    const base = freshBase();
    const a = locks(base);
    const b = locks(base);
    const l1 = await a.acquire('r');
    expect(Number.isSafeInteger(l1.fence)).toBe(true);
    // The fence taken from the create's reply is the node's czxid as the server stores it.
    expect((await b.inspect('r')).fence).toBe(l1.fence);
    expect(await b.tryAcquire('r')).toBeNull();
    await l1.release();
    const l2 = await b.acquire('r');
    expect(l2.fence).toBeGreaterThan(l1.fence!);
    expect(l2.remaining()).toBeGreaterThan(0);
    await l2.release();
  });

  it('is not reentrant: a second tryAcquire of a held resource from the same provider is null', async () => {
    const a = locks(freshBase());
    const held = await a.acquire('r');
    expect(await a.tryAcquire('r')).toBeNull();
    expect((await a.inspect('r')).waiting).toBe(0);
    await held.release();
    expect(await a.tryAcquire('r')).not.toBeNull();
  });

  it('takes several resources all or nothing, and leaves nothing queued when one is taken', async () => {
    const base = freshBase();
    const a = locks(base);
    const b = locks(base);
    const held = await a.acquire('b');
    expect(await b.tryAcquire(['c', 'b', 'a'])).toBeNull();
    for (const r of ['a', 'b', 'c']) {
      const state = await a.inspect(r);
      expect(state.waiting).toBe(0);
      if (r !== 'b') expect(state.holder).toBeNull();
    }
    await held.release();
    const all = await b.acquire(['c', 'b', 'a']);
    expect(Object.keys(all.fences).sort()).toEqual(['a', 'b', 'c']);
    await all.release();
  });

  it('serves two multi-resource waiters in any order without deadlock', async () => {
    const base = freshBase();
    const a = locks(base);
    const b = locks(base);
    const runs = await Promise.all(
      [
        [a, ['x', 'y']],
        [b, ['y', 'x']],
      ].flatMap(([p, rs]) =>
        [0, 1, 2].map(async () => {
          const lock = await (p as ZooKeeperLocks).acquire(rs as string[], { wait: 30_000 });
          await lock.release();
          return true;
        }),
      ),
    );
    expect(runs).toEqual([true, true, true, true, true, true]);
  });

  it('leaves no node queued when the wait runs out', async () => {
    const base = freshBase();
    const a = locks(base);
    const b = locks(base);
    const held = await a.acquire('r');
    await expect(b.acquire('r', { wait: 200 })).rejects.toBeInstanceOf(AcquireTimeoutError);
    expect((await a.inspect('r')).waiting).toBe(0);
    await held.release();
  });

  it('leaves no node queued when the wait is aborted, and the next holder gets the lock', async () => {
    const base = freshBase();
    const a = locks(base);
    const b = locks(base);
    const c = locks(base);
    const held = await a.acquire('r');
    const stop = new AbortController();
    const waiting = b.acquire('r', { signal: stop.signal });
    await queued(a, 'r', 1);
    const reason = new Error('stop waiting');
    stop.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    await queued(a, 'r', 0);
    await held.release();
    const next = await c.acquire('r', { wait: 10_000 });
    expect((await c.inspect('r')).holder).toBe(next.value);
    await next.release();
  });

  it('serves waiters in FIFO order, and a release wakes exactly the next waiter', async () => {
    const base = freshBase();
    const holder = locks(base);
    const waiters = [locks(base), locks(base), locks(base)];
    // Each waiter's session id, from a lock of its own.
    const sessions: string[] = [];
    for (const [i, w] of waiters.entries()) {
      await w.acquire(`own${i}`);
      sessions.push((await w.inspect(`own${i}`)).session!);
    }
    const log: string[] = [];
    const onRequest = (message: unknown) => {
      const { session } = message as { session: string };
      const who = sessions.indexOf(session);
      if (who >= 0) log.push(`w${who}`);
    };
    const first = await holder.acquire('r');
    const order: number[] = [];
    const done: Promise<void>[] = [];
    for (const [i, w] of waiters.entries()) {
      done.push(
        w.acquire('r', { wait: 30_000 }).then(async (lock: Lock) => {
          order.push(i);
          log.push(`acquired w${i}`);
          await sleep(20);
          log.push(`release w${i}`);
          await lock.release();
        }),
      );
      await queued(holder, 'r', i + 1);
    }
    diagnostics.subscribe('quorumlock:zookeeper:request', onRequest);
    try {
      log.push('release holder');
      await first.release();
      await Promise.all(done);
    } finally {
      diagnostics.unsubscribe('quorumlock:zookeeper:request', onRequest);
    }
    expect(order).toEqual([0, 1, 2]);
    // Between a release and the next acquisition, only the next waiter sent requests.
    const woken = (from: string, to: string) =>
      new Set(log.slice(log.indexOf(from) + 1, log.indexOf(to)).filter((e) => e.startsWith('w')));
    expect(woken('release holder', 'acquired w0')).toEqual(new Set(['w0']));
    expect(woken('release w0', 'acquired w1')).toEqual(new Set(['w0', 'w1']));
    expect(woken('release w1', 'acquired w2')).toEqual(new Set(['w1', 'w2']));
    // w2 sent nothing while w0 and w1 had their turns.
    expect(woken('release holder', 'release w1').has('w2')).toBe(false);
  });

  it('aborts the signal with LockLostError when its lock node is deleted', async () => {
    const base = freshBase();
    const a = locks(base);
    const lock = await a.acquire('r');
    const raw = await openZkClient({ hosts: zk.hosts, sessionTimeout: 2000, clock: systemClock });
    while (raw.state !== 'connected') await sleep(5);
    const parent = `${base}/r`;
    const [node] = (await raw.children(parent)) ?? [];
    const lost = new Promise((resolve) => lock.signal.addEventListener('abort', resolve));
    await raw.remove(`${parent}/${node}`);
    await lost;
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    expect(lock.held).toBe(false);
    await raw.close();
  });

  it('keeps a held lock confirmed past its session timeout while connected', async () => {
    const a = locks(freshBase(), 2000);
    const lock = await a.acquire('r');
    await sleep(2500);
    expect(lock.held).toBe(true);
    expect(lock.remaining()).toBeGreaterThan(0);
    await lock.release();
    expect(lock.signal.aborted).toBe(true);
  });

  it('is reached through connect(zk://…) with a chroot it creates, and offers using, inspect and leader', async () => {
    const url = `zk://${zk.hosts}/app/deep/locks`;
    const a = await connect(url, { ttl: 4000 });
    const b = await connect(url, { ttl: 4000 });
    open.push(a, b);
    expect(a).toBeInstanceOf(ZooKeeperLocks);
    const result = await a.using('job', async (signal, lock) => {
      expect(signal.aborted).toBe(false);
      const state = await b.inspect('job');
      expect(state.holder).toBe(lock.value);
      expect((state as ZkLockState).fence).toBe(lock.fence);
      return 42;
    });
    expect(result).toBe(42);
    expect((await b.inspect('job')).holder).toBeNull();

    const elected: string[] = [];
    const leaderA = a.leader('lead', () => {
      elected.push('a');
    });
    while (!leaderA.isLeader) await sleep(5);
    const leaderB = b.leader('lead', () => {
      elected.push('b');
    });
    await leaderA.stop();
    while (!leaderB.isLeader) await sleep(5);
    await leaderB.stop();
    expect(elected).toEqual(['a', 'b']);
  });
});
