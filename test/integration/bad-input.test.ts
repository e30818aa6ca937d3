import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, type Lock, LockError, Redlock } from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
/** One long-lived observer connection per node, opened before anything is measured. */
let observers: Redis[] = [];
const instances: Redlock[] = [];

/** Commands that would change or announce a lock; none may run on bad input. */
const WRITES = ['evalsha', 'eval', 'evalsha_ro', 'set', 'del', 'pexpire', 'publish', 'subscribe'];

/** Per node: connections ever accepted, and calls of every command in WRITES. */
async function activity(): Promise<Array<{ connections: number; writes: number }>> {
  return Promise.all(
    observers.map(async (redis) => {
      const stats = await redis.info('stats');
      const commands = await redis.info('commandstats');
      const connections = Number(/total_connections_received:(\d+)/.exec(stats)?.[1]);
      let writes = 0;
      for (const m of commands.matchAll(/cmdstat_([a-z_|]+):calls=(\d+)/g)) {
        if (WRITES.includes(m[1]!)) writes += Number(m[2]);
      }
      return { connections, writes };
    }),
  );
}

/** Asserts that `run` fails with an InvalidArgumentError (thrown or rejected) whose message matches. */
async function invalid(run: () => unknown, mentions?: RegExp, label = String(run)): Promise<void> {
  let error: unknown;
  try {
    await run();
  } catch (err) {
    error = err;
  }
  expect(
    error,
    `${label}: expected an InvalidArgumentError${mentions ? ` mentioning ${mentions}` : ''}`,
  ).toBeInstanceOf(InvalidArgumentError);
  expect(error).toBeInstanceOf(LockError);
  expect((error as InvalidArgumentError).code).toBe('ERR_LOCK_INVALID_ARGUMENT');
  if (mentions) expect((error as Error).message).toMatch(mentions);
}

/**
 * Opens every connection of `redlock` and lets everything it sent land: a
 * round decides at a quorum, but inspect waits for every node, and each
 * connection runs its commands in order. Then wipes what the warm-up wrote.
 */
async function warm(redlock: Redlock): Promise<void> {
  await (await redlock.acquire('warm-up')).release();
  await redlock.inspect('warm-up');
  await Promise.all(observers.map((r) => r.flushall()));
}

function client(): Redlock {
  const redlock = new Redlock(ensemble.urls);
  instances.push(redlock);
  return redlock;
}

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 3 });
  observers = ensemble.nodes.map((n) => n.client());
  await Promise.all(observers.map((r) => r.ping()));
});
afterAll(async () => {
  for (const r of observers) r.disconnect();
  await ensemble?.stop();
});
beforeEach(async () => {
  await Promise.all(observers.map((r) => r.flushall()));
});
afterEach(async () => {
  await Promise.all(instances.splice(0).map((r) => r.close()));
});

describe('new Redlock with bad nodes', () => {
  it('throws InvalidArgumentError without opening a single connection', async () => {
    const [url] = ensemble.urls as [string];
    const port = new URL(url).port;
    const before = await activity();
    const cases: Array<[unknown, RegExp]> = [
      [[], /non-empty array/],
      [undefined, /non-empty array/],
      [null, /non-empty array/],
      [url, /non-empty array/],
      [{ 0: url, length: 1 }, /non-empty array/],
      [[url, url], /names server .* again/],
      [[`redis://127.0.0.1:${port}`, `redis://127.0.0.1:${port}/0`], /names server .* again/],
      [[`redis://127.0.0.1:${port}/0`, `redis://127.0.0.1:${port}/1`], /not independent/],
      [['redis://127.0.0.1', 'redis://127.0.0.1:6379'], /names server .* again/],
      [[url, 'not a url'], /not a valid URL/],
      [[url, '127.0.0.1:6379'], /nodes\[1\]/],
      [[url, 'localhost:6379'], /nodes\[1\]/],
      [[url, 'http://127.0.0.1:6379'], /redis:\/\/ or rediss:\/\//],
      [[url, 'tcp://127.0.0.1:6379'], /redis:\/\/ or rediss:\/\//],
      [[url, `redis://127.0.0.1:${port}/abc`], /database/],
      [[url, `redis://127.0.0.1:${port}/-1`], /database/],
      [[url, `redis://127.0.0.1:${port}/1.5`], /database/],
      [[url, 42], /nodes\[1\]/],
      [[null], /nodes\[0\]/],
      [[{}], /nodes\[0\]/],
      [[url, { host: '127.0.0.1', port: 6379 }], /nodes\[1\]/],
    ];
    for (const [nodes, mentions] of cases) {
      await invalid(() => new Redlock(nodes as string[]), mentions);
    }
    // A client that had started connecting would show up here within moments.
    await sleep(200);
    expect(await activity()).toEqual(before);
    expect(await ensemble.keys()).toEqual([]);
  });

  it('accepts what is well-formed: user, password, database, rediss', () => {
    const [url] = ensemble.urls as [string];
    const port = Number(new URL(url).port);
    // Checked only up to validation: these instances are closed at once.
    for (const nodes of [
      [`redis://user:secret@127.0.0.1:${port}/2`],
      [`redis://:secret@127.0.0.1:${port}`],
      [`redis://127.0.0.1:${port}`, `redis://127.0.0.1:${port + 1}`],
    ]) {
      const redlock = new Redlock(nodes);
      instances.push(redlock);
      expect(redlock.nodeIds).toHaveLength(nodes.length);
    }
  });
});

describe('new Redlock with bad options', () => {
  it('throws InvalidArgumentError without opening a single connection', async () => {
    const before = await activity();
    const cases: Array<[unknown, RegExp]> = [
      [null, /options must be an object/],
      [5, /options must be an object/],
      ['ttl', /options must be an object/],
      [{ ttl: Number.NaN }, /options\.ttl/],
      [{ ttl: Number.POSITIVE_INFINITY }, /options\.ttl/],
      [{ ttl: -1 }, /options\.ttl/],
      [{ ttl: 0 }, /options\.ttl/],
      [{ ttl: '1000' }, /options\.ttl/],
      [{ quorum: 1 }, /options\.quorum/],
      [{ quorum: 0 }, /options\.quorum/],
      [{ quorum: 4 }, /options\.quorum/],
      [{ quorum: 2.5 }, /options\.quorum/],
      [{ quorum: '2' }, /options\.quorum/],
      [{ driftFactor: 1 }, /options\.driftFactor/],
      [{ driftFactor: -0.1 }, /options\.driftFactor/],
      [{ driftMs: -1 }, /options\.driftMs/],
      [{ nodeTimeout: 0 }, /options\.nodeTimeout/],
      [{ nodeTimeout: Number.NaN }, /options\.nodeTimeout/],
      [{ keyPrefix: 5 }, /options\.keyPrefix/],
      [{ retry: 'fast' }, /options\.retry/],
      [{ retry: { factor: 0.5 } }, /options\.retry\.factor/],
      [{ retry: { minDelay: -5 } }, /options\.retry\.minDelay/],
      [{ retry: { minDelay: 100, maxDelay: 10 } }, /maxDelay/],
      [{ retry: { jitter: true } }, /unknown option "jitter"/],
      [{ fencing: 'yes' }, /options\.fencing/],
      [{ renew: 1 }, /options\.renew/],
      [{ tll: 1000 }, /unknown option "tll"/],
      [{ ttl: 1000, wait: 10 }, /unknown option "wait"/],
    ];
    for (const [options, mentions] of cases) {
      await invalid(() => new Redlock(ensemble.urls, options as object), mentions);
    }
    await sleep(200);
    expect(await activity()).toEqual(before);
    expect(await ensemble.keys()).toEqual([]);
  });
});

/** Bad resources for every entry point that takes them. */
const BAD_RESOURCES: unknown[] = ['', [], ['a', 'a'], [5], ['a', ''], 5, null, undefined, {}];
/** Bad per-acquisition options. */
const BAD_OPTIONS: unknown[] = [
  { ttl: 0 },
  { ttl: -100 },
  { ttl: Number.NaN },
  { ttl: Number.POSITIVE_INFINITY },
  { ttl: '1000' },
  { wait: -1 },
  { wait: Number.NaN },
  { wait: '100' },
  { signal: {} },
  { signal: 'abort' },
  { signal: new AbortController() },
  { renew: 'yes' },
  { onLost: 'callback' },
  { timeout: 100 },
  null,
  5,
];

describe('entry points of a Redlock with bad input', () => {
  it('acquire, tryAcquire and using reject bad resources and options, touching no node', async () => {
    const redlock = client();
    // Connections are up and idle before measuring.
    await warm(redlock);
    const before = await activity();
    const routine = async () => 'ran';
    for (const resources of BAD_RESOURCES) {
      const r = resources as string;
      const label = JSON.stringify(resources) ?? 'undefined';
      await invalid(() => redlock.acquire(r), /resource/, `acquire(${label})`);
      await invalid(() => redlock.tryAcquire(r), /resource/, `tryAcquire(${label})`);
      await invalid(() => redlock.using(r, routine), /resource/, `using(${label})`);
      await invalid(() => redlock.using(r, {}, routine), /resource/, `using(${label}, {})`);
    }
    for (const options of BAD_OPTIONS) {
      const o = options as object;
      const label = String(JSON.stringify(options));
      await invalid(() => redlock.acquire('r', o), undefined, `acquire('r', ${label})`);
      await invalid(() => redlock.tryAcquire('r', o), undefined, `tryAcquire('r', ${label})`);
    }
    // using always renews, but a malformed `renew` is still the caller's mistake.
    const usingOptions = BAD_OPTIONS.filter((o) => o !== null && typeof o === 'object');
    for (const options of usingOptions) {
      const label = `using('r', ${JSON.stringify(options)})`;
      await invalid(() => redlock.using('r', options as object, routine), undefined, label);
    }
    await invalid(() => redlock.using('r', {}, 'not a function' as never), /function/);
    await invalid(() => redlock.using('r', undefined as never), /function/);
    expect(await activity()).toEqual(before);
    expect(await ensemble.keys()).toEqual([]);
  });

  it('using rejects options that are not an object, like acquire does', async () => {
    const redlock = client();
    let ran = false;
    const routine = () => {
      ran = true;
    };
    await invalid(() => redlock.using('r', null as never, routine), /options/, 'options null');
    await invalid(() => redlock.using('r', 5 as never, routine), /options/, 'options 5');
    expect(ran).toBe(false);
    expect(await ensemble.keys()).toEqual([]);
  });

  it('using never runs its routine on bad input', async () => {
    const redlock = client();
    let ran = false;
    await invalid(() =>
      redlock.using('r', { ttl: -1 }, () => {
        ran = true;
      }),
    );
    expect(ran).toBe(false);
  });

  it('inspect rejects bad resource names, touching no node', async () => {
    const redlock = client();
    await warm(redlock);
    const before = await activity();
    for (const resource of ['', [], ['a', 'a'], [5], 5, null, undefined, {}]) {
      await invalid(() => redlock.inspect(resource as string), /resource/);
    }
    expect(await activity()).toEqual(before);
  });

  it('inspect takes one resource name, not a list', async () => {
    await invalid(() => client().inspect(['a', 'b'] as unknown as string));
  });

  it('lock.extend rejects a bad ttl and leaves the lock as it was', async () => {
    const redlock = client();
    const lock: Lock = await redlock.acquire('r', { ttl: 10_000 });
    // The acquire has landed on every node before anything is measured.
    await redlock.inspect('r');
    const remaining = lock.remaining();
    const before = await activity();
    const pttls = await Promise.all(observers.map((r) => r.pttl('quorumlock:{r}')));
    for (const ttl of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '5000', null, 2 ** 31]) {
      await invalid(() => lock.extend(ttl as number), /ttl/);
    }
    const after = await Promise.all(observers.map((r) => r.pttl('quorumlock:{r}')));
    after.forEach((p, i) => {
      expect(p).toBeLessThanOrEqual(pttls[i]!);
    });
    expect(lock.remaining()).toBeLessThanOrEqual(remaining);
    expect(lock.held).toBe(true);
    expect(await activity()).toEqual(before);
    await lock.release();
  });
});
