import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  type Lock,
  LockLostError,
  QuorumError,
  Redlock,
  type RedlockOptions,
} from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

const PREFIX = 'quorumlock:';
const lockKey = (r: string) => `${PREFIX}{${r}}`;
const fenceKey = (r: string) => `${PREFIX}{${r}}:fence`;

let ensemble: Ensemble;
const instances: Redlock[] = [];

/**
 * A Redlock over the whole ensemble, closed after the test. Node deadlines
 * are generous: these tests are about the lock, not about slow nodes, and a
 * loaded machine can stall the test process for a few hundred ms.
 */
function client(options?: RedlockOptions): Redlock {
  const redlock = new Redlock(ensemble.urls, { nodeTimeout: 2_000, ...options });
  instances.push(redlock);
  return redlock;
}

/**
 * Waits until every command each client has sent so far has run on every
 * node. Rounds decide at a quorum, so the last nodes' acquire or release may
 * still be on its way when a call resolves; inspect waits for every node, and
 * each connection runs its commands in order.
 */
async function settled(): Promise<void> {
  await Promise.all(instances.map((r) => r.inspect('settled')));
}

/** Every key on every node, once every client's commands have landed. */
async function allKeys() {
  await settled();
  return ensemble.keys();
}

/** Lock values (not fence counters) of `resource` on every node, in node order. */
async function lockValues(resource: string): Promise<Array<string | null>> {
  await settled();
  const keys = await ensemble.keys(lockKey(resource));
  return ensemble.nodes.map((n) => keys.find((k) => k.node === n.index)?.value ?? null);
}

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 5 });
});
afterAll(async () => {
  await ensemble?.stop();
});
beforeEach(async () => {
  await Promise.all(ensemble.nodes.map((n) => n.flush()));
});
afterEach(async () => {
  await Promise.all(instances.splice(0).map((r) => r.close()));
});

describe('acquire and release', () => {
  it('holds the lock on every node under one unguessable value, with a fencing token', async () => {
    const redlock = client();
    const lock = await redlock.acquire('invoice:42', { ttl: 10_000 });
    expect(await lockValues('invoice:42')).toEqual(Array(5).fill(lock.value));
    // At least 128 random bits, base64url: 22 characters or more.
    expect(lock.value).toMatch(/^[A-Za-z0-9_-]{22,}/);
    expect(lock.resources).toEqual(['invoice:42']);
    expect(Number.isSafeInteger(lock.fence)).toBe(true);
    expect(lock.fences).toEqual({ 'invoice:42': lock.fence });
    expect(lock.remaining()).toBeGreaterThan(9_000);
    expect(lock.remaining()).toBeLessThanOrEqual(10_000);
    expect(Math.abs(lock.validUntil - (Date.now() + lock.remaining()))).toBeLessThan(1_000);
    expect(lock.nodes).toHaveLength(5);
    expect(lock.nodes.filter((n) => n.status === 'acquired').length).toBeGreaterThanOrEqual(3);
    expect(lock.signal.aborted).toBe(false);

    await lock.release();
    expect(await lockValues('invoice:42')).toEqual(Array(5).fill(null));
    expect(lock.signal.aborted).toBe(true);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    // The fence counter outlives the lock: tokens must keep growing.
    expect(await ensemble.keys(fenceKey('invoice:42'))).toHaveLength(5);
  });

  it('gives a later holder a larger fencing token and a fresh value', async () => {
    const a = client();
    const b = client();
    const first = await a.acquire('r');
    await first.release();
    const second = await b.acquire('r');
    expect(second.fence!).toBeGreaterThan(first.fence!);
    expect(second.value).not.toBe(first.value);
    await second.release();
  });

  it('tryAcquire returns null while another holder has the lock, writing nothing', async () => {
    const holder = await client().acquire('r', { ttl: 10_000 });
    const before = await allKeys();
    expect(await client().tryAcquire('r')).toBeNull();
    expect(await lockValues('r')).toEqual(Array(5).fill(holder.value));
    // Same keys, same values: the failed round left nothing and moved no fence.
    expect(await allKeys()).toEqual(before);
    await holder.release();
  });

  it('acquire waits for the holder and takes the lock soon after its release', async () => {
    const holder = await client().acquire('r', { ttl: 20_000 });
    const waiting = client().acquire('r', { wait: 15_000 });
    await sleep(300);
    const releasedAt = performance.now();
    await holder.release();
    const lock = await waiting;
    const handoff = performance.now() - releasedAt;
    // The holder's key would have lived 20 s more: the waiter heard the release.
    expect(handoff).toBeLessThan(2_000);
    // Held on a quorum at least; a node whose release had not landed when the
    // waiter's round reached it answered "taken" and is now simply free.
    const values = await lockValues('r');
    expect(values.filter((v) => v === lock.value).length).toBeGreaterThanOrEqual(3);
    expect(values.every((v) => v === lock.value || v === null)).toBe(true);
    await lock.release();
  });

  it('acquire with a short wait rejects with AcquireTimeoutError and leaves nothing behind', async () => {
    const holder = await client().acquire('r', { ttl: 20_000 });
    const before = await allKeys();
    const started = performance.now();
    const err = await client()
      .acquire('r', { wait: 300 })
      .catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(AcquireTimeoutError);
    expect((err as AcquireTimeoutError).code).toBe('ERR_LOCK_ACQUIRE_TIMEOUT');
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(3_000);
    expect(await allKeys()).toEqual(before);
    await holder.release();
  });

  it('acquire rejects with the signal reason when aborted, and leaves nothing behind', async () => {
    const holder = await client().acquire('r', { ttl: 20_000 });
    const before = await allKeys();
    const controller = new AbortController();
    const pending = client()
      .acquire('r', { signal: controller.signal })
      .catch((e: unknown) => e);
    await sleep(200);
    const reason = new Error('shutting down');
    const abortedAt = performance.now();
    controller.abort(reason);
    expect(await pending).toBe(reason);
    expect(performance.now() - abortedAt).toBeLessThan(1_000);
    await sleep(100);
    expect(await allKeys()).toEqual(before);
    await holder.release();
  });

  it('a second waiter of the same process gives up when its own wait runs out', async () => {
    const holder = await client().acquire('r', { ttl: 20_000 });
    const redlock = client();
    const first = redlock.acquire('r', { wait: 6_000 }).catch((e: unknown) => e);
    await sleep(200);
    const started = performance.now();
    const err = await redlock.acquire('r', { wait: 300 }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(AcquireTimeoutError);
    // The cause is the wait behind another holder, not the nodes: no quorum talk.
    expect((err as Error).message).not.toMatch(/quorum/i);
    expect((err as Error).cause).not.toBeInstanceOf(QuorumError);
    // It must not stay queued behind the first waiter until that one is served.
    expect(elapsed).toBeLessThan(3_000);
    // tryAcquire with a wait behind the same line resolves null, as for any held lock.
    expect(await redlock.tryAcquire('r', { wait: 300 })).toBeNull();
    await holder.release();
    const lock = await first;
    expect(lock).toHaveProperty('value');
    await (lock as Lock).release();
  });
});

describe('release', () => {
  it('resolves for a lock that has already expired, twice, deleting nothing', async () => {
    const lock = await client().acquire('r', { ttl: 200 });
    await sleep(400);
    expect(lock.remaining()).toBeLessThanOrEqual(0);
    const started = performance.now();
    await lock.release();
    await lock.release();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await lockValues('r')).toEqual(Array(5).fill(null));
  });

  it("resolves for an expired lock now held by someone else, and leaves the other holder's key", async () => {
    const mine = await client().acquire('r', { ttl: 200 });
    await sleep(400);
    const other = client();
    const theirs = await other.acquire('r', { ttl: 20_000 });
    const started = performance.now();
    await mine.release();
    await mine.release();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await lockValues('r')).toEqual(Array(5).fill(theirs.value));
    // The other holder still holds it for real: it can extend and then release it.
    await theirs.extend(30_000);
    expect(theirs.remaining()).toBeGreaterThan(20_000);
    await theirs.release();
    expect(await lockValues('r')).toEqual(Array(5).fill(null));
  });

  it('is idempotent on a held lock: the second release neither throws nor touches a new holder', async () => {
    const lock = await client().acquire('r');
    await lock.release();
    const next = await client().acquire('r');
    await lock.release();
    expect(await lockValues('r')).toEqual(Array(5).fill(next.value));
    await next.release();
  });
});

describe('multi-resource locks', () => {
  it('takes every resource on every node, each with its own fencing token', async () => {
    const lock = await client().acquire(['a', 'b', 'c'], { ttl: 10_000 });
    for (const r of ['a', 'b', 'c']) {
      expect(await lockValues(r)).toEqual(Array(5).fill(lock.value));
      expect(Number.isSafeInteger(lock.fences[r])).toBe(true);
    }
    expect(lock.fence).toBe(lock.fences.a);
    await lock.release();
    for (const r of ['a', 'b', 'c']) expect(await lockValues(r)).toEqual(Array(5).fill(null));
  });

  it('writes none of the resources when one of them is taken (all-or-nothing)', async () => {
    const holder = await client().acquire('b', { ttl: 20_000 });
    const before = await allKeys();
    expect(await client().tryAcquire(['a', 'b', 'c'])).toBeNull();
    // Not even a fence counter of a or c: the script checks every key before writing any.
    expect(await allKeys()).toEqual(before);
    await holder.release();
  });

  it('is refused by a lock that overlaps it in one resource only', async () => {
    const ab = await client().acquire(['a', 'b'], { ttl: 20_000 });
    const before = await allKeys();
    expect(await client().tryAcquire(['b', 'c'])).toBeNull();
    expect(await allKeys()).toEqual(before);
    // A resource outside the held set stays free for anyone.
    const c = await client().tryAcquire('c');
    expect(c).not.toBeNull();
    await c!.release();
    await ab.release();
  });
});
