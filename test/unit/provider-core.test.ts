/**
 * The shared core of every provider, over a scripted backend: what it retries,
 * what it gives back, and when a hold counts as lost.
 */
import { describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  LockLostError,
  MissingDriverError,
  QuorumError,
} from '../../src/index.js';
import type { ExtendResult } from '../../src/lock.js';
import {
  BackendProvider,
  type LockBackend,
  resolveProviderOptions,
  type TryOutcome,
  type TryRequest,
} from '../../src/provider.js';

type Step = (request: TryRequest) => Promise<TryOutcome<number>> | TryOutcome<number>;

/** A backend whose tries follow `steps` (the last one repeats); it records what the core asked. */
function scripted(steps: Step[]) {
  const log = { tries: 0, released: [] as number[], dropped: [] as number[], closed: false };
  let next = 1;
  const backend: LockBackend<number> = {
    alwaysConfirm: false,
    async try(request) {
      const step = steps[Math.min(log.tries, steps.length - 1)]!;
      log.tries++;
      return step(request);
    },
    async extend(): Promise<ExtendResult> {
      return { deadline: performance.now() + 1000, gone: false, outcomes: [] };
    },
    async release(handle) {
      log.released.push(handle);
      return [];
    },
    drop(handle) {
      log.dropped.push(handle);
    },
    async inspect(resource) {
      return { resource, holder: null };
    },
    async close() {
      log.closed = true;
    },
  };
  const acquired = (): TryOutcome<number> => ({
    kind: 'acquired',
    handle: next++,
    fences: {},
    deadline: performance.now() + 60_000,
    outcomes: [],
  });
  const { settings } = resolveProviderOptions({ retry: { minDelay: 1, maxDelay: 2 } }, []);
  return { provider: new BackendProvider(backend, settings), log, acquired };
}

const taken: Step = () => ({ kind: 'taken', outcomes: [] });
const unreachable: Step = () => {
  throw new QuorumError('acquire', 1, [{ node: 'db', status: 'error' }], 'db is down');
};

describe('the provider core', () => {
  it('retries a store that could not be reached, then reports it', async () => {
    const { provider, log } = scripted([unreachable]);
    await expect(provider.acquire('r', { wait: 10_000 })).rejects.toBeInstanceOf(QuorumError);
    expect(log.tries).toBe(3);
  });

  it('does not retry an error that another try cannot fix (a missing driver)', async () => {
    const { provider, log } = scripted([
      () => {
        throw new MissingDriverError('pg', 'PostgreSQL');
      },
    ]);
    await expect(provider.acquire('r')).rejects.toBeInstanceOf(MissingDriverError);
    expect(log.tries).toBe(1);
  });

  it('tries again after a blip and holds the lock when a later try wins', async () => {
    const harness = scripted([unreachable, taken, () => harness.acquired()]);
    const lock = await harness.provider.acquire('r');
    expect(lock.held).toBe(true);
    expect(harness.log.tries).toBe(3);
    await lock.release();
    expect(harness.log.released).toEqual([1]);
  });

  it('times out with AcquireTimeoutError carrying the last refusal', async () => {
    const { provider } = scripted([taken]);
    const err = await provider.acquire('r', { wait: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AcquireTimeoutError);
    expect((err as Error).cause).toMatchObject({ code: 'ERR_LOCK_TAKEN' });
  });

  it('on abort, waits for the try in flight to end and gives back what it won late', async () => {
    let finish!: () => void;
    const harness = scripted([
      () =>
        new Promise((resolve) => {
          finish = () => resolve(harness.acquired());
        }),
    ]);
    const controller = new AbortController();
    const reason = new Error('stop');
    const acquiring = harness.provider.acquire('r', { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 5));
    controller.abort(reason);
    let settled = false;
    acquiring.catch(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    // Still in the store's queue: the acquisition has not given up yet.
    expect(settled).toBe(false);
    finish();
    await expect(acquiring).rejects.toBe(reason);
    expect(harness.log.released).toEqual([1]);
  });

  it('counts a hold lost before its lock was made as taken, and gives it back', async () => {
    const harness = scripted([
      (request) => {
        request.lose('the session ended');
        return harness.acquired();
      },
      taken,
    ]);
    expect(await harness.provider.tryAcquire('r')).toBeNull();
    expect(harness.log.released).toEqual([1]);
  });

  it('a hold the backend declares lost aborts the signal, and the backend drops it', async () => {
    let lose!: TryRequest['lose'];
    const harness = scripted([
      (request) => {
        lose = request.lose;
        return harness.acquired();
      },
    ]);
    const lock = await harness.provider.acquire('r');
    lose('its session ended', new Error('ECONNRESET'));
    expect(lock.held).toBe(false);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    expect((lock.signal.reason as Error).cause).toBeInstanceOf(Error);
    expect(harness.log.dropped).toEqual([1]);
    await lock.release();
    expect(harness.log.released).toEqual([1]);
  });

  it('close() abandons held locks, drops their holds and closes the backend', async () => {
    const harness = scripted([() => harness.acquired()]);
    const lock = await harness.provider.acquire('r');
    await harness.provider.close();
    expect(lock.held).toBe(false);
    expect(harness.log.dropped).toEqual([1]);
    expect(harness.log.closed).toBe(true);
    await expect(harness.provider.acquire('r')).rejects.toMatchObject({ code: 'ERR_LOCK_CLOSED' });
  });
});
