import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redlock } from '../../src/index.js';
import { Child, killAll } from '../fixtures/child.mjs';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
const probes: Redis[] = [];

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 3 });
});
afterEach(async () => {
  await killAll();
  for (const p of probes.splice(0)) p.disconnect();
});
afterAll(async () => {
  await ensemble?.stop();
});

/** Resolves when `check` resolves true, polling; rejects after `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

describe('close()', () => {
  it('leaves nothing behind: a process that used every feature exits on its own', async () => {
    if (!existsSync(new URL('../../dist/index.js', import.meta.url))) {
      throw new Error('the worker imports dist/: run `npm run build` first');
    }
    const worker = new Child('./leaks-worker.mjs', { urls: ensemble.urls });
    const closed = await worker.waitFor((e) => e.event === 'closed', { timeoutMs: 30_000 });
    // The waiter pending at close was rejected, and no leader is left.
    expect(closed.pending).toBe('ERR_LOCK_CLOSED');
    expect(closed.leaders).toEqual([false, false]);
    const exit = await Promise.race([worker.exited, sleep(5_000).then(() => 'still running')]);
    if (exit === 'still running') {
      throw new Error(
        `the worker did not exit within 5 s of close(); active resources: ${JSON.stringify(closed.active)}`,
      );
    }
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect((exit as { t: number }).t - closed.t).toBeLessThan(5_000);
    expect(worker.stderr).toBe('');
    // close() abandons held locks rather than releasing them: they expire on their own (ttl 600 ms).
    await until(
      async () => (await ensemble.keys('quorumlock:*')).every((k) => k.key.endsWith(':fence')),
      2_000,
    );
  }, 60_000);

  it('listens for turns on one channel per instance, and closes every connection', async () => {
    const probe = ensemble.nodes.map((n) => {
      const c = n.client();
      probes.push(c);
      return c;
    });
    const connections = () =>
      Promise.all(
        probe.map(
          async (c) => ((await c.client('LIST')) as string).split('\n').filter(Boolean).length,
        ),
      );
    const turnChannels = () =>
      Promise.all(probe.map(async (c) => (await c.pubsub('CHANNELS', 'quorumlock:turn:*')).length));
    const baseline = await connections();
    // A generous node deadline: this test is about connections, not slow nodes.
    const redlock = new Redlock(ensemble.urls, { nodeTimeout: 1_000 });
    const held = await redlock.acquire('sub', { ttl: 5_000 });
    const waiters = [redlock.acquire('sub'), redlock.acquire('sub2'), redlock.acquire('sub')];
    // The waiters listen for their turns on (at least) a quorum of nodes, all on one channel.
    await until(async () => (await turnChannels()).filter((n) => n === 1).length >= 2);
    expect((await turnChannels()).every((n) => n <= 1)).toBe(true);
    await held.release();
    for (const w of waiters) await (await w).release();
    await redlock.close();
    await until(async () => (await connections()).every((n, i) => n === baseline[i]));
    expect(await turnChannels()).toEqual(probe.map(() => 0));
  });
});
