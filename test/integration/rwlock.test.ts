/**
 * The read-write lock on real redis-server nodes: never a writer beside
 * anyone else among independent clients (also with a paused node), a stream
 * of readers does not starve a writer, and a writer's fence is above every
 * fence held before it and below every fence taken after it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { InvalidArgumentError, type Lock, Redlock } from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
let direct: Redis[] = [];
const redlocks: Redlock[] = [];

function rwlock(name: string) {
  const r = new Redlock(ensemble.urls, { ttl: 10_000, nodeTimeout: 1_000 });
  redlocks.push(r);
  return r.readWriteLock(name);
}

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 3 });
  direct = ensemble.nodes.map((n) => {
    const c = n.client();
    c.on('error', () => {});
    return c;
  });
});
afterEach(async () => {
  for (const n of ensemble.nodes) n.resume();
  await Promise.all(redlocks.splice(0).map((r) => r.close()));
  await Promise.all(direct.map((c) => c.flushall()));
});
afterAll(async () => {
  for (const c of direct) c.disconnect();
  await ensemble?.stop();
});

interface Hold {
  readonly kind: 'read' | 'write';
  readonly fence: number;
  /** Order in which the acquisitions completed. */
  readonly at: number;
}

/** Independent clients read or write `name` at random; checks exclusion as it goes. */
async function contend(name: string, clients: number, rounds: number): Promise<Hold[]> {
  let readers = 0;
  let writers = 0;
  let completed = 0;
  const holds: Hold[] = [];
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const lock = rwlock(name);
      for (let i = 0; i < rounds; i++) {
        const kind = Math.random() < 0.3 ? 'write' : 'read';
        const permit = await lock[kind].acquire({ wait: 20_000 });
        if (kind === 'write') {
          expect({ readers, writers }).toEqual({ readers: 0, writers: 0 });
          writers++;
        } else {
          expect(writers).toBe(0);
          readers++;
        }
        holds.push({ kind, fence: permit.fence!, at: completed++ });
        await sleep(Math.random() * 4);
        expect(permit.remaining()).toBeGreaterThan(0);
        if (kind === 'write') writers--;
        else readers--;
        await permit.release();
      }
    }),
  );
  return holds;
}

/** A writer's fence is above every permit's acquired before it and below every one acquired after. */
function checkFences(holds: readonly Hold[]): void {
  for (const w of holds.filter((h) => h.kind === 'write')) {
    for (const h of holds) {
      if (h.at < w.at) expect(w.fence).toBeGreaterThan(h.fence);
      if (h.at > w.at) expect(h.fence).toBeGreaterThan(w.fence);
    }
  }
}

describe('read-write lock: exclusion', () => {
  it('never has a writer beside a reader or another writer', async () => {
    const holds = await contend('doc', 6, 8);
    expect(holds).toHaveLength(48);
    checkFences(holds);
  });

  it('never has a writer beside anyone while a node is paused', async () => {
    ensemble.nodes[1]!.pause();
    const holds = await contend('paused-doc', 5, 5);
    expect(holds).toHaveLength(25);
    checkFences(holds);
  });

  it('lets readers share', async () => {
    const lock = rwlock('shared');
    const readers = await Promise.all([
      lock.read.acquire(),
      lock.read.acquire(),
      lock.read.acquire(),
    ]);
    expect(await lock.write.tryAcquire()).toBeNull();
    await Promise.all(readers.map((r) => r.release()));
    const writer = await lock.write.tryAcquire();
    expect(writer).not.toBeNull();
    expect(await lock.read.tryAcquire()).toBeNull();
    await writer!.release();
  });
});

describe('read-write lock: writers are not starved', () => {
  it('lets a waiting writer in ahead of readers that came after it', async () => {
    let stop = false;
    let readerRounds = 0;
    let readersIn = 0;
    let writerIn = false;
    const readers = Array.from({ length: 4 }, async (_, i) => {
      const lock = rwlock('stream');
      await sleep(i * 5);
      // Overlapping reads: without the queue the lock would never be free of readers.
      while (!stop) {
        if (++readerRounds > 400) throw new Error('the writer starved');
        const permit = await lock.read.acquire({ wait: 20_000 });
        expect(writerIn).toBe(false);
        readersIn++;
        await sleep(15);
        readersIn--;
        await permit.release();
      }
    });
    await vi.waitFor(() => expect(readerRounds).toBeGreaterThan(8), {
      timeout: 20_000,
      interval: 5,
    });
    const writer = rwlock('stream').write;
    let permit: Lock | undefined;
    try {
      permit = await writer.acquire({ wait: 20_000 });
      expect(readersIn).toBe(0);
      writerIn = true;
      await sleep(10);
      writerIn = false;
    } finally {
      stop = true;
      await permit?.release();
      await Promise.all(readers);
    }
  });
});

describe('read-write lock: bad input', () => {
  it('rejects bad names and options before any I/O', async () => {
    const r = new Redlock(ensemble.urls);
    redlocks.push(r);
    expect(() => r.readWriteLock('')).toThrow(InvalidArgumentError);
    expect(() => r.readWriteLock(null as never)).toThrow(InvalidArgumentError);
    const lock = r.readWriteLock('bad');
    await expect(lock.read.acquire({ ttl: 0 })).rejects.toThrow(InvalidArgumentError);
    await expect(lock.write.tryAcquire({ signal: 'no' } as never)).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(lock.write.using({ renew: 'yes' } as never, () => 1)).rejects.toThrow(
      InvalidArgumentError,
    );
    expect(await ensemble.keys()).toEqual([]);
  });
});
