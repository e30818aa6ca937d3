import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AcquireTimeoutError, QuorumError, Redlock, type RedlockOptions } from '../../src/index.js';
import { type Ensemble, type RedisProcess, startEnsemble } from '../harness/ensemble.js';
import { type FaultProxy, startProxy } from '../harness/proxy.js';

const lockKey = (r: string) => `quorumlock:{${r}}`;
const fenceKey = (r: string) => `quorumlock:{${r}}:fence`;
/** The value another holder's lock key holds on the nodes where the test plants it. */
const OTHER = 'another-holder';

let ensemble: Ensemble;
const instances: Redlock[] = [];
const proxies: FaultProxy[] = [];
const direct: Redis[] = [];

/** A Redlock over `urls`, closed after the test. */
function client(urls: readonly string[], options?: RedlockOptions): Redlock {
  const redlock = new Redlock(urls, options);
  instances.push(redlock);
  return redlock;
}

/** A fault proxy in front of `node`, closed after the test. */
async function proxy(node: RedisProcess): Promise<FaultProxy> {
  const p = await startProxy({ host: node.host, port: node.port });
  proxies.push(p);
  return p;
}

/** A plain client straight to `node`, bypassing any proxy. */
function redisOf(node: RedisProcess): Redis {
  const redis = node.client({ maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  direct.push(redis);
  return redis;
}

/** Plants another holder's lock on `nodes` for `ttl` ms. */
async function plantOther(resource: string, nodes: readonly RedisProcess[], ttl = 60_000) {
  await Promise.all(nodes.map((n) => redisOf(n).set(lockKey(resource), OTHER, 'PX', ttl)));
}

/** Lock values of `resource` on every node (null where absent). */
async function lockValues(resource: string): Promise<Array<string | null>> {
  const keys = await ensemble.keys(lockKey(resource));
  return ensemble.nodes.map((n) => keys.find((k) => k.node === n.index)?.value ?? null);
}

/**
 * Waits until the lock values of `resource` are `expected` on every node. Lock
 * keys of the tests live far longer than this wait, so only an undo gets there.
 */
async function eventually(resource: string, expected: Array<string | null>): Promise<void> {
  await vi.waitFor(async () => expect(await lockValues(resource)).toEqual(expected), {
    timeout: 5_000,
    interval: 50,
  });
}

/**
 * Brings every connection of `redlock` up before faults begin. A round alone
 * is not enough (it decides on a quorum, maybe before the slower connections
 * through a proxy are up); inspect waits for an answer from every node.
 */
async function warm(redlock: Redlock): Promise<void> {
  const lock = await redlock.acquire('warm-up', { wait: 10_000 });
  await lock.release();
  await vi.waitFor(
    async () => {
      const state = await redlock.inspect('warm-up');
      expect(state.nodes.filter((n) => n.error !== undefined)).toEqual([]);
    },
    { timeout: 10_000, interval: 50 },
  );
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - started };
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
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  for (const r of direct.splice(0)) r.disconnect();
  // Bring every node back for the next test: resume the paused, restart the stopped.
  for (const n of ensemble.nodes) n.resume();
  await Promise.all(
    ensemble.nodes.map(async (n) => {
      if (!(await answers(n))) await n.restart();
    }),
  );
});

/** True when `node` answers PING within a second. */
async function answers(node: RedisProcess): Promise<boolean> {
  const redis = node.client({
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await Promise.race([redis.ping(), sleep(1_000, 'silent')])) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/**
 * Deadline of each node call in the minority/majority tests. A round that
 * waited for a failed node would take at least this long (or, for the slow
 * nodes, their 1.2 s round trip); a healthy round must take under half of it,
 * leaving a second for a loaded machine.
 */
const NODE_TIMEOUT = 2_000;
/** Latency the proxies add to the slow minority, each way. */
const SLOW_MS = 600;

describe('a minority of nodes failing', () => {
  it('acquires in about the healthy nodes time when two of five are down', async () => {
    const redlock = client(ensemble.urls, { nodeTimeout: NODE_TIMEOUT });
    await warm(redlock);
    await Promise.all([ensemble.nodes[1]!.stop(), ensemble.nodes[3]!.stop()]);
    const { value: lock, ms } = await timed(() => redlock.acquire('r', { wait: 5_000 }));
    expect(ms).toBeLessThan(NODE_TIMEOUT / 2);
    expect(lock.nodes.map((n) => n.status)).toEqual([
      'acquired',
      'error',
      'acquired',
      'error',
      'acquired',
    ]);
    const values = await lockValues('r');
    expect([values[0], values[2], values[4]]).toEqual(Array(3).fill(lock.value));
    await lock.release();
  });

  it('acquires without waiting for down nodes on a client created while they are down', async () => {
    await Promise.all([ensemble.nodes[1]!.stop(), ensemble.nodes[3]!.stop()]);
    const redlock = client(ensemble.urls, { nodeTimeout: NODE_TIMEOUT });
    const { value: lock, ms } = await timed(() => redlock.acquire('r', { wait: 5_000 }));
    expect(ms).toBeLessThan(NODE_TIMEOUT / 2);
    await lock.release();
  });

  it('acquires in about the healthy nodes time when two of five are paused (SIGSTOP)', async () => {
    const redlock = client(ensemble.urls, { nodeTimeout: NODE_TIMEOUT });
    await warm(redlock);
    ensemble.nodes[0]!.pause();
    ensemble.nodes[4]!.pause();
    const { value: lock, ms } = await timed(() => redlock.acquire('r', { wait: 5_000 }));
    expect(ms).toBeLessThan(NODE_TIMEOUT / 2);
    expect(lock.nodes[0]!.status).toBe('pending');
    expect(lock.nodes[4]!.status).toBe('pending');
    expect(lock.remaining()).toBeGreaterThan(25_000);
    // Release decides on the healthy majority too, without waiting for the paused nodes.
    const released = await timed(() => lock.release());
    expect(released.ms).toBeLessThan(NODE_TIMEOUT / 2);
    ensemble.nodes[0]!.resume();
    ensemble.nodes[4]!.resume();
    // Once the paused nodes run again, their queued acquire lands before the release: nothing stays.
    await eventually('r', Array(5).fill(null));
  });

  it('acquires in about the healthy nodes time when two of five are slow (600 ms each way)', async () => {
    const slow = await Promise.all([proxy(ensemble.nodes[0]!), proxy(ensemble.nodes[1]!)]);
    const urls = [slow[0]!.url, slow[1]!.url, ...ensemble.urls.slice(2)];
    const redlock = client(urls, { nodeTimeout: NODE_TIMEOUT });
    await warm(redlock);
    for (const p of slow) p.setDelay(SLOW_MS);
    const { value: lock, ms } = await timed(() => redlock.acquire('r', { wait: 5_000 }));
    expect(ms).toBeLessThan(NODE_TIMEOUT / 2);
    expect(lock.nodes.slice(2).map((n) => n.status)).toEqual(Array(3).fill('acquired'));
    await lock.release();
  });

  it('extends in about the healthy nodes time when two of five are paused', async () => {
    const redlock = client(ensemble.urls, { nodeTimeout: NODE_TIMEOUT });
    const lock = await redlock.acquire('r', { ttl: 5_000 });
    ensemble.nodes[1]!.pause();
    ensemble.nodes[2]!.pause();
    const { ms } = await timed(() => lock.extend(20_000));
    expect(ms).toBeLessThan(NODE_TIMEOUT / 2);
    expect(lock.remaining()).toBeGreaterThan(15_000);
    await lock.release();
  });
});

describe('a majority of nodes failing', () => {
  it('fails promptly with a QuorumError naming each down node when three of five are down', async () => {
    const redlock = client(ensemble.urls, { nodeTimeout: NODE_TIMEOUT });
    await warm(redlock);
    await Promise.all([0, 2, 4].map((i) => ensemble.nodes[i]!.stop()));
    for (const attempt of [
      () => redlock.tryAcquire('r'),
      () => redlock.acquire('r', { wait: 10_000 }),
    ]) {
      const { value: err, ms } = await timed(() => attempt().catch((e: unknown) => e));
      expect(err).toBeInstanceOf(QuorumError);
      expect(ms).toBeLessThan(NODE_TIMEOUT / 2);
      const q = err as QuorumError;
      expect(q.code).toBe('ERR_LOCK_QUORUM');
      for (const i of [0, 2, 4]) {
        expect(q.nodes[i]).toMatchObject({ node: `127.0.0.1:${ensemble.nodes[i]!.port}` });
        expect(q.nodes[i]!.status).toBe('error');
        expect(q.nodes[i]!.cause).toBeInstanceOf(Error);
        expect(q.message).toContain(`127.0.0.1:${ensemble.nodes[i]!.port}`);
      }
    }
    // The two live nodes hold nothing of ours.
    expect(await lockValues('r')).toEqual(Array(5).fill(null));
  });

  it('fails promptly on a client created while a majority is down', async () => {
    await Promise.all([0, 2, 4].map((i) => ensemble.nodes[i]!.stop()));
    const redlock = client(ensemble.urls, { nodeTimeout: NODE_TIMEOUT });
    const { value: err, ms } = await timed(() =>
      redlock.acquire('r', { wait: 10_000 }).catch((e: unknown) => e),
    );
    expect(err).toBeInstanceOf(QuorumError);
    expect(ms).toBeLessThan(NODE_TIMEOUT / 2);
  });

  it('fails with timeouts at nodeTimeout when three of five are paused', async () => {
    const redlock = client(ensemble.urls, { nodeTimeout: 300 });
    await warm(redlock);
    for (const i of [1, 2, 3]) ensemble.nodes[i]!.pause();
    const { value: err, ms } = await timed(() =>
      redlock.acquire('r', { wait: 10_000 }).catch((e: unknown) => e),
    );
    expect(err).toBeInstanceOf(QuorumError);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(3_000);
    const q = err as QuorumError;
    expect([1, 2, 3].map((i) => q.nodes[i]!.status)).toEqual(Array(3).fill('timeout'));
    for (const i of [1, 2, 3]) ensemble.nodes[i]!.resume();
    // The paused nodes run the queued acquire and then its undo: nothing of ours stays.
    await eventually('r', Array(5).fill(null));
  });
});

describe('a round slower than the ttl', () => {
  /** A client whose majority sits behind proxies adding `delay` ms each way. */
  async function slowMajority(delay: number, options: RedlockOptions) {
    const slow = await Promise.all([0, 1, 2].map((i) => proxy(ensemble.nodes[i]!)));
    const redlock = client([...slow.map((p) => p.url), ...ensemble.urls.slice(3)], options);
    await warm(redlock);
    for (const p of slow) p.setDelay(delay);
    return redlock;
  }

  // Without fencing the validity check alone must refuse the lock; with fencing,
  // phase 2 (which runs because fresh counters differ) must not hide it either.
  it.each([false, true])(
    'is never returned as held by tryAcquire (fencing %s): QuorumError about validity',
    async (fencing) => {
      const redlock = await slowMajority(150, { ttl: 200, nodeTimeout: 2_000, fencing });
      const err = await redlock.tryAcquire('r').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(QuorumError);
      expect((err as Error).message).toMatch(/validity/);
    },
  );

  it('is never returned as held by acquire: it runs out of wait instead', async () => {
    const redlock = await slowMajority(150, { ttl: 200, nodeTimeout: 2_000, fencing: false });
    const err = await redlock.acquire('r', { wait: 1_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AcquireTimeoutError);
    expect((err as Error).cause).toBeInstanceOf(QuorumError);
    await eventually('r', Array(5).fill(null));
  });

  it('is refused even when the ttl outlasts the delay but not the round trip plus drift', async () => {
    // 2 × 200 ms round trip against a 400 ms ttl: the keys live on, the validity does not.
    const redlock = await slowMajority(200, { ttl: 400, nodeTimeout: 2_000, fencing: false });
    const err = await redlock.tryAcquire('r').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuorumError);
    expect((err as Error).message).toMatch(/validity/);
  });
});

describe('a failed round leaves nothing behind', () => {
  /**
   * Five nodes; the first two sit behind proxies that hold every byte. The
   * client's connections are up before the proxies start holding.
   */
  async function heldPair(options: RedlockOptions) {
    const held = await Promise.all([proxy(ensemble.nodes[0]!), proxy(ensemble.nodes[1]!)]);
    const redlock = client([...held.map((p) => p.url), ...ensemble.urls.slice(2)], options);
    await warm(redlock);
    for (const p of held) p.hold();
    return { held, redlock };
  }

  /**
   * Delivers the held bytes and waits until the late acquire has run on the
   * held nodes (it leaves a fence counter there), then until the lock values
   * of `r` are `expected`.
   */
  async function land(held: readonly FaultProxy[], expected: Array<string | null>) {
    for (const p of held) p.flush();
    await vi.waitFor(
      async () => {
        const fenced = (await ensemble.keys(fenceKey('r'))).map((f) => f.node);
        expect(fenced).toEqual(expect.arrayContaining([0, 1]));
      },
      { timeout: 5_000, interval: 50 },
    );
    await eventually('r', expected);
  }

  it('undoes a yes that lands after the round was decided (taken on three others)', async () => {
    await plantOther('r', ensemble.nodes.slice(2));
    const { held, redlock } = await heldPair({ nodeTimeout: 5_000 });
    const { value, ms } = await timed(() => redlock.tryAcquire('r'));
    expect(value).toBeNull();
    // Decided by the three answers, without waiting for the held nodes.
    expect(ms).toBeLessThan(2_500);
    await land(held, [null, null, OTHER, OTHER, OTHER]);
  });

  it('undoes a yes that lands after its node already timed out', async () => {
    await plantOther('r', ensemble.nodes.slice(2));
    const { held, redlock } = await heldPair({ nodeTimeout: 400 });
    expect(await redlock.tryAcquire('r')).toBeNull();
    // Let the held nodes' deadline pass before their answers arrive.
    await sleep(800);
    await land(held, [null, null, OTHER, OTHER, OTHER]);
  });

  it('undoes its yes everywhere when the round fails at the deadline (taken on two others)', async () => {
    await plantOther('r', ensemble.nodes.slice(3));
    const { held, redlock } = await heldPair({ nodeTimeout: 400 });
    // One free node says yes, two say taken, two are silent: decided only at the deadline.
    expect(await redlock.tryAcquire('r')).toBeNull();
    await land(held, [null, null, null, OTHER, OTHER]);
  });

  it('undoes every round of an acquire that runs out of wait', async () => {
    await plantOther('r', ensemble.nodes.slice(3));
    const { held, redlock } = await heldPair({ nodeTimeout: 400 });
    const err = await redlock.acquire('r', { wait: 1_500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AcquireTimeoutError);
    await land(held, [null, null, null, OTHER, OTHER]);
  });
});

describe("a client's own leftovers", () => {
  it('never block its next round: a key left by an earlier round of the same acquire is taken over', async () => {
    const [n0, n1, n2] = ensemble.nodes;
    const p0 = await proxy(n0!);
    const redlock = client([p0.url, n1!.url, n2!.url], { ttl: 30_000, nodeTimeout: 3_000 });
    await warm(redlock);
    // Another holder has the third node: the client needs the first two.
    await plantOther('r', [n2!]);
    p0.setDelay(400);
    const started = performance.now();
    const pending = redlock.acquire('r', { wait: 20_000 });
    // Once the first round's acquire has landed on node 0, cut that connection: its
    // answer and the round's undo are lost, and the key stays there for 30 s.
    const watcher = redisOf(n0!);
    let leftover: string | null = null;
    while (!leftover && performance.now() - started < 5_000) {
      leftover = await watcher.get(lockKey('r'));
      if (!leftover) await sleep(5);
    }
    p0.drop();
    p0.setDelay(0);
    expect(leftover).not.toBeNull();
    const lock = await pending;
    const elapsed = performance.now() - started;
    // Far sooner than the leftover's 30 s: the later round took it over.
    expect(elapsed).toBeLessThan(10_000);
    expect(lock.value).not.toBe(leftover);
    expect(lock.value.split('.')[0]).toBe(leftover!.split('.')[0]);
    expect(await watcher.get(lockKey('r'))).toBe(lock.value);
    expect(await redisOf(n1!).get(lockKey('r'))).toBe(lock.value);
    expect(await redisOf(n2!).get(lockKey('r'))).toBe(OTHER);
    await lock.release();
    expect(await watcher.get(lockKey('r'))).toBeNull();
  });

  it('of an earlier, separate acquisition do block it: only the same acquisition may take them over', async () => {
    const n0 = ensemble.nodes[0]!;
    const redlock = client(ensemble.urls.slice(0, 3), { ttl: 30_000 });
    // An earlier lock of the same client that was abandoned (never released) still holds the nodes.
    const abandoned = await redlock.acquire('r');
    expect(await redlock.tryAcquire('r')).toBeNull();
    expect(await redisOf(n0).get(lockKey('r'))).toBe(abandoned.value);
    await abandoned.release();
  });
});

/** Keeps a Redis node busy for ARGV[1] ms, like a slow command would. */
const BUSY_LUA = `
local t = redis.call('TIME')
local start = tonumber(t[1]) * 1000000 + tonumber(t[2])
repeat
  local n = redis.call('TIME')
until tonumber(n[1]) * 1000000 + tonumber(n[2]) - start >= tonumber(ARGV[1]) * 1000
return 1`;

/**
 * Without yielding this process's event loop: true when the node on every
 * port holds `key`. A child process reads them, so this blocks like a long
 * synchronous task would. A node that holds the key has also written its
 * reply to the command that set it (Redis answers before serving the next client).
 */
function allHoldSync(ports: readonly number[], key: string): boolean {
  const script = String.raw`
    const net = require('node:net');
    const ports = ${JSON.stringify(ports)};
    let left = ports.length;
    let all = true;
    const done = (held) => {
      all = all && held;
      if (--left === 0) process.stdout.write(all ? 'yes' : 'no');
    };
    for (const port of ports) {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('GET ${key}\r\n'));
      let reply = '';
      socket.on('data', (d) => {
        reply += d;
        if (!reply.includes('\r\n')) return;
        socket.destroy();
        done(!reply.startsWith('$-1'));
      });
      socket.on('error', () => done(false));
    }`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  return out === 'yes';
}

describe('a client whose event loop stalls', () => {
  it('counts the answers that arrived during the stall instead of timing every node out', async () => {
    // One round only (no fencing phase 2): the deadline of that round is what this is about.
    const redlock = client(ensemble.urls, { nodeTimeout: 250, fencing: false });
    await warm(redlock);
    const blockers = ensemble.nodes.map((n) => redisOf(n));
    await Promise.all(blockers.map((b) => b.ping()));
    // Every node is busy for 600 ms, so it answers the round only once this process has stalled.
    const busy = blockers.map((b) => b.eval(BUSY_LUA, 0, '600'));
    const pending = redlock.tryAcquire('r').catch((e: unknown) => e);
    // Two turns of the check phase: the round goes out on the wire in the first; the
    // stall starts in the second, long before the deadline, so that when the loop
    // turns again the expired round timer is due before the sockets are read.
    await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
    // A long synchronous task, lasting until every node has answered the round
    // (the answers wait in the socket buffers) and past the 250 ms deadline.
    const stalled = performance.now();
    const ports = ensemble.nodes.map((n) => n.port);
    while (!allHoldSync(ports, lockKey('r')) && performance.now() - stalled < 20_000) {
      // Check again without yielding.
    }
    while (performance.now() - stalled < 500) {
      // busy
    }
    const result = await pending;
    await Promise.all(busy);
    expect(result).not.toBeInstanceOf(Error);
    expect(result).toHaveProperty('value');
    await (result as { release(): Promise<void> }).release();
  });
});
