import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';
import { type FaultProxy, startProxy } from '../harness/proxy.js';

/** Clients opened by a test, quit after it. */
const clients: Redis[] = [];
function track(client: Redis): Redis {
  client.on('error', () => {
    // Faults are the point of these tests; errors are asserted where they matter.
  });
  clients.push(client);
  return client;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** Settles within `ms`, or reports that it is still pending. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  try {
    return await Promise.race([p, pending]);
  } finally {
    clearTimeout(timer);
  }
}

describe('ensemble', () => {
  let ensemble: Ensemble;
  beforeAll(async () => {
    ensemble = await startEnsemble({ size: 3 });
  });
  afterAll(async () => {
    await ensemble?.stop();
  });

  it('starts independent nodes on distinct ports that answer PING', async () => {
    expect(ensemble.nodes).toHaveLength(3);
    expect(new Set(ensemble.urls).size).toBe(3);
    for (const [i, node] of ensemble.nodes.entries()) {
      expect(node.index).toBe(i);
      expect(node.url).toBe(`redis://127.0.0.1:${node.port}`);
      expect(ensemble.urls[i]).toBe(node.url);
      expect(existsSync(node.dir)).toBe(true);
      expect(node.pid).toBeGreaterThan(0);
      const c = track(node.client());
      expect(await c.ping()).toBe('PONG');
      // Independent masters: a write on one node is not seen on another.
      await c.set('only-here', String(i));
    }
    const seen = await ensemble.keys('only-here');
    expect(seen).toEqual([0, 1, 2].map((i) => ({ node: i, key: 'only-here', value: String(i) })));
  });

  it('lists keys with their values and flushes a node', async () => {
    const [a, b] = ensemble.nodes.map((n) => track(n.client()));
    await a!.set('k:1', 'x');
    await b!.hset('k:2', 'f', 'v');
    const keys = await ensemble.keys('k:*');
    expect(keys).toContainEqual({ node: 0, key: 'k:1', value: 'x' });
    expect(keys).toContainEqual({ node: 1, key: 'k:2', value: null });
    await ensemble.nodes[0]!.flush();
    await ensemble.nodes[1]!.flush();
    await ensemble.nodes[2]!.flush();
    expect(await ensemble.keys()).toEqual([]);
  });

  it('pause makes commands time out and resume answers them', async () => {
    const node = ensemble.nodes[1]!;
    const c = track(node.client({ commandTimeout: 300, maxRetriesPerRequest: 0 }));
    expect(await c.ping()).toBe('PONG');
    node.pause();
    try {
      await expect(c.ping()).rejects.toThrow(/timed out/i);
    } finally {
      node.resume();
    }
    expect(await c.ping()).toBe('PONG');
  });

  it('flush resumes a paused node first', async () => {
    const node = ensemble.nodes[2]!;
    const c = track(node.client());
    await c.set('gone', '1');
    node.pause();
    await node.flush();
    expect(await c.exists('gone')).toBe(0);
  });

  it('kill then restart with keepData keeps keys, on the same port', async () => {
    const node = ensemble.nodes[0]!;
    const port = node.port;
    const oldPid = node.pid!;
    const before = track(node.client());
    await before.set('durable', 'yes');
    await node.kill();
    expect(isAlive(oldPid)).toBe(false);
    expect(node.pid).toBeUndefined();
    await node.restart({ keepData: true });
    expect(node.port).toBe(port);
    expect(node.pid).not.toBe(oldPid);
    const after = track(node.client());
    expect(await after.get('durable')).toBe('yes');
  });

  it('stop then restart with keepData keeps keys', async () => {
    const node = ensemble.nodes[1]!;
    await track(node.client()).set('kept', '1');
    await node.stop();
    await node.restart({ keepData: true });
    expect(await track(node.client()).get('kept')).toBe('1');
  });

  it('restart without keepData loses every key', async () => {
    const node = ensemble.nodes[2]!;
    await track(node.client()).set('lost', '1');
    await node.kill();
    await node.restart();
    expect(await track(node.client()).get('lost')).toBeNull();
    // Even a snapshot on disk is wiped.
    await track(node.client()).set('lost', '2');
    await node.restart({ keepData: false });
    expect(await track(node.client()).get('lost')).toBeNull();
  });
});

describe('ensemble with appendonly', () => {
  it('keeps acknowledged writes across a kill, even of a paused node', async () => {
    const ensemble = await startEnsemble({ size: 1, appendonly: true });
    try {
      const node = ensemble.nodes[0]!;
      const c = track(node.client());
      expect(await c.config('GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
      await c.set('fence', '41');
      await c.incr('fence');
      node.pause();
      await node.kill();
      await node.restart({ keepData: true });
      expect(await track(node.client()).get('fence')).toBe('42');
    } finally {
      await ensemble.stop();
    }
  });

  it('passes extra args to redis-server', async () => {
    const ensemble = await startEnsemble({
      size: 1,
      args: ['--maxmemory-policy', 'noeviction', '--hz', '50'],
    });
    try {
      const c = track(ensemble.nodes[0]!.client());
      expect(await c.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      expect(await c.config('GET', 'hz')).toEqual(['hz', '50']);
    } finally {
      await ensemble.stop();
    }
  });
});

describe('ensemble stop', () => {
  it('leaves no redis-server process and no data directory, paused nodes included', async () => {
    const ensemble = await startEnsemble({ size: 3 });
    const pids = ensemble.nodes.map((n) => n.pid!);
    const dirs = ensemble.nodes.map((n) => n.dir);
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
    ensemble.nodes[1]!.pause();
    await ensemble.stop();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    for (const dir of dirs) expect(existsSync(dir)).toBe(false);
    await ensemble.stop();
  });
});

describe('watchdog', () => {
  it('SIGKILLs the servers and removes the directories still listed when its parent goes away', async () => {
    const doomedDir = await mkdtemp(join(tmpdir(), 'quorumlock-watchdog-'));
    const sparedDir = await mkdtemp(join(tmpdir(), 'quorumlock-watchdog-'));
    const idle = () => spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    const doomed = idle();
    const spared = idle();
    const doomedExit = once(doomed, 'exit');
    const watchdog = spawn(
      process.execPath,
      [fileURLToPath(new URL('../harness/watchdog.mjs', import.meta.url))],
      { stdio: ['pipe', 'ignore', 'ignore'] },
    );
    const watchdogExit = once(watchdog, 'exit');
    try {
      watchdog.stdin.write(`+${doomed.pid}\n+${spared.pid}\n-${spared.pid}\n`);
      watchdog.stdin.write(`+dir ${doomedDir}\n+dir ${sparedDir}\n-dir ${sparedDir}\n`);
      // What the operating system does to the pipe when the test process dies.
      watchdog.stdin.end();
      const [, signal] = await doomedExit;
      expect(signal).toBe('SIGKILL');
      await watchdogExit;
      expect(isAlive(spared.pid!)).toBe(true);
      expect(existsSync(doomedDir)).toBe(false);
      expect(existsSync(sparedDir)).toBe(true);
    } finally {
      for (const child of [doomed, spared, watchdog]) child.kill('SIGKILL');
      await rm(sparedDir, { recursive: true, force: true });
    }
  });
});

describe('QUORUMLOCK_TEST_NODES', () => {
  it('adopts running servers: flush works, process control throws', async () => {
    const real = await startEnsemble({ size: 2 });
    const saved = process.env.QUORUMLOCK_TEST_NODES;
    process.env.QUORUMLOCK_TEST_NODES = real.urls.join(',');
    try {
      const adopted = await startEnsemble({ size: 2 });
      expect(adopted.urls).toEqual(real.urls);
      expect(adopted.nodes[0]!.pid).toBeUndefined();
      await track(adopted.nodes[0]!.client()).set('x', '1');
      expect(await adopted.keys()).toEqual([{ node: 0, key: 'x', value: '1' }]);
      await adopted.nodes[0]!.flush();
      expect(await adopted.keys()).toEqual([]);
      await expect(adopted.nodes[0]!.kill()).rejects.toThrow(/QUORUMLOCK_TEST_NODES/);
      await expect(adopted.nodes[0]!.stop()).rejects.toThrow(/QUORUMLOCK_TEST_NODES/);
      await expect(adopted.nodes[0]!.restart()).rejects.toThrow(/QUORUMLOCK_TEST_NODES/);
      expect(() => adopted.nodes[0]!.pause()).toThrow(/QUORUMLOCK_TEST_NODES/);
      await expect(startEnsemble({ size: 3 })).rejects.toThrow(/lists 2 servers/);
      await adopted.stop();
      // The adopted servers are not ours to stop.
      expect(await track(real.nodes[0]!.client()).ping()).toBe('PONG');
    } finally {
      if (saved === undefined) delete process.env.QUORUMLOCK_TEST_NODES;
      else process.env.QUORUMLOCK_TEST_NODES = saved;
      await real.stop();
    }
  });
});

describe('fault proxy', () => {
  let ensemble: Ensemble;
  let proxy: FaultProxy;
  beforeAll(async () => {
    ensemble = await startEnsemble({ size: 1 });
  });
  afterAll(async () => {
    await ensemble?.stop();
  });
  afterEach(async () => {
    await proxy?.close();
  });

  async function proxied(options: { commandTimeout?: number } = {}): Promise<Redis> {
    const node = ensemble.nodes[0]!;
    proxy = await startProxy({ host: node.host, port: node.port });
    const c = track(node.client({ port: proxy.port, retryStrategy: () => null, ...options }));
    expect(await c.ping()).toBe('PONG');
    return c;
  }

  it('forwards commands to its node', async () => {
    const c = await proxied();
    expect(proxy.url).toBe(`redis://127.0.0.1:${proxy.port}`);
    await c.set('via-proxy', 'v');
    expect(await track(ensemble.nodes[0]!.client()).get('via-proxy')).toBe('v');
  });

  it('adds the set delay in each direction', async () => {
    const c = await proxied();
    proxy.setDelay(100);
    const t0 = performance.now();
    expect(await c.ping()).toBe('PONG');
    const elapsed = performance.now() - t0;
    // Request and reply each wait 100 ms; only a lower bound is safe on a busy machine.
    expect(elapsed).toBeGreaterThanOrEqual(190);
    proxy.setDelay(0);
    expect(await c.ping()).toBe('PONG');
  });

  it('keeps order when the delay is lowered', async () => {
    const c = await proxied();
    proxy.setDelay(150);
    const first = c.set('order', 'first');
    await new Promise((r) => setTimeout(r, 20));
    proxy.setDelay(0);
    const second = c.set('order', 'second');
    await Promise.all([first, second]);
    expect(await c.get('order')).toBe('second');
  });

  it('holds bytes until flush and then delivers them', async () => {
    const c = await proxied();
    proxy.hold();
    const reply = c.set('held', 'late').then(() => c.get('held'));
    expect(await within(reply, 300)).toBe('pending');
    // Held requests have not reached the server either.
    expect(await track(ensemble.nodes[0]!.client()).get('held')).toBeNull();
    proxy.flush();
    expect(await reply).toBe('late');
  });

  it('blackhole swallows bytes while the connection stays open, and resets it when lifted', async () => {
    const c = await proxied({ commandTimeout: 300 });
    const errors: Error[] = [];
    c.on('error', (e: Error) => errors.push(e));
    proxy.blackhole(true);
    await expect(c.set('swallowed', '1')).rejects.toThrow(/timed out/i);
    expect(c.status).toBe('ready');
    proxy.blackhole(false);
    // The stream lost bytes: it is reset rather than left out of step.
    await vi.waitFor(() => expect(errors.length).toBeGreaterThan(0), { timeout: 2_000 });
    expect(await track(ensemble.nodes[0]!.client()).get('swallowed')).toBeNull();
  });

  it('reset makes the client see a connection error', async () => {
    const c = await proxied();
    const errors: Error[] = [];
    c.on('error', (e: Error) => errors.push(e));
    proxy.hold();
    const pending = c.ping();
    await new Promise((r) => setTimeout(r, 50));
    proxy.reset();
    await expect(pending).rejects.toThrow();
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toContain('ECONNRESET');
    proxy.flush();
  });

  it('drop ends connections gracefully', async () => {
    const c = await proxied();
    const ended = new Promise<void>((r) => c.once('end', () => r()));
    const errors: Error[] = [];
    c.on('error', (e: Error) => errors.push(e));
    proxy.drop();
    await ended;
    expect(errors).toEqual([]);
  });

  it('refuse resets new connections and accepts them again when turned off', async () => {
    await proxied();
    proxy.refuse(true);
    const refused = track(
      ensemble.nodes[0]!.client({ port: proxy.port, retryStrategy: () => null, lazyConnect: true }),
    );
    await expect(refused.connect().then(() => refused.ping())).rejects.toThrow();
    proxy.refuse(false);
    const accepted = track(ensemble.nodes[0]!.client({ port: proxy.port }));
    expect(await accepted.ping()).toBe('PONG');
  });
});
