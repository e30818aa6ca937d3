/**
 * The LockProvider contract (docs/architecture.md, "The contract"), one suite
 * for every backend: each backend's test file starts its real server(s) and calls
 * `describeProviderContract` with a target; `describeLossContract` adds the
 * loss tests for backends whose holder has a session the server can end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  connect,
  InvalidArgumentError,
  type Lock,
  LockLostError,
  type LockProvider,
  type LockState,
} from '../../src/index.js';
import { Child, killAll } from '../fixtures/child.mjs';
import type { DatabaseServer } from '../harness/processes.mjs';
import { type FaultProxy, startProxy } from '../harness/proxy.js';

/** A backend under test, started by its test file. */
export interface ContractTarget {
  /** The URLs `connect()` takes for this backend. */
  readonly urls: readonly string[];
  /** A count that grows when this library opens a connection (for "no I/O before bad input fails"). */
  connections(): Promise<number>;
  /** Stops the server(s). */
  stop(): Promise<void>;
}

/** A backend whose holder keeps a session the server can end, and faults to end it with. */
export interface LossTarget extends ContractTarget {
  /** Ends the holder's session from the server side (pg_terminate_backend, KILL CONNECTION). */
  terminate(state: LockState): Promise<void>;
  /** SIGSTOP and SIGCONT of the server. */
  pause(): void;
  resume(): void;
  /** SIGKILL of the server, and a fresh start on the same port. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** Where the server listens, for a fault proxy in front of it. */
  readonly address: { host: string; port: number };
  /** The URL of the server through `port` on 127.0.0.1. */
  via(port: number): string;
}

/**
 * The loss target of a database server of the harness: `via(port)` is its URL
 * through another port, `connections` the SQL counting this library's
 * sessions, `terminate(id)` the SQL that ends session `id`.
 */
export function databaseTarget(
  server: DatabaseServer,
  sql: { via: (port: number) => string; connections: string; terminate: (id: number) => string },
): LossTarget {
  return {
    urls: [server.url],
    address: { host: server.host, port: server.port },
    via: sql.via,
    connections: async () => Number(await server.sql(sql.connections)),
    async terminate(state) {
      await server.sql(sql.terminate(Number((state as { session?: unknown }).session)));
    },
    pause: () => server.pause(),
    resume: () => server.resume(),
    kill: () => server.kill(),
    restart: () => server.restart(),
    stop: () => server.stop(),
  };
}

/** Options every provider of the suite gets: short waits, so contention tests stay fast. */
const FAST = { retry: { minDelay: 5, maxDelay: 40 } };

let counter = 0;
/** A resource name no other test uses. */
function fresh(label: string): string {
  counter++;
  return `contract:${label}:${process.pid}:${counter}`;
}

/** Resolves with the reason `signal` aborts with. */
function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) =>
    signal.addEventListener('abort', () => resolve(signal.reason), { once: true }),
  );
}

/** Registers the contract tests against the backend `start` brings up. */
export function describeProviderContract(name: string, start: () => Promise<ContractTarget>): void {
  describe(`LockProvider contract: ${name}`, () => {
    let target: ContractTarget;
    const providers: LockProvider[] = [];
    const open = async (options: object = {}): Promise<LockProvider> => {
      const provider = await connect(target.urls, { ...FAST, ...options });
      providers.push(provider);
      return provider;
    };

    beforeAll(async () => {
      target = await start();
    });
    afterAll(async () => {
      await killAll();
      await Promise.allSettled(providers.map((p) => p.close()));
      await target?.stop();
    });

    it('excludes holders of independent providers from each other under contention', async () => {
      const resource = fresh('exclusion');
      const clients = await Promise.all([1, 2, 3, 4].map(() => open()));
      let inside = 0;
      let most = 0;
      let entries = 0;
      const fences: number[] = [];
      await Promise.all(
        clients.map(async (client) => {
          for (let i = 0; i < 5; i++) {
            await client.using(resource, { wait: 30_000 }, async (_signal, lock) => {
              inside++;
              entries++;
              most = Math.max(most, inside);
              if (lock.fence !== undefined) fences.push(lock.fence);
              await sleep(2);
              inside--;
            });
          }
        }),
      );
      expect(entries).toBe(20);
      expect(most).toBe(1);
      expect(fences).toEqual([...fences].sort((a, b) => a - b));
      expect(new Set(fences).size).toBe(20);
    });

    it('tryAcquire returns null while another provider, or the same one, holds the resource', async () => {
      const resource = fresh('try');
      const [a, b] = [await open(), await open()];
      const held = await a.acquire(resource);
      expect(await b.tryAcquire(resource)).toBeNull();
      // Not reentrant: the holder's own provider is refused too.
      expect(await a.tryAcquire(resource)).toBeNull();
      expect((await a.inspect(resource)).holder).not.toBeNull();
      await held.release();
      const next = await b.tryAcquire(resource);
      expect(next).not.toBeNull();
      await next!.release();
      expect((await b.inspect(resource)).holder).toBeNull();
    });

    it('gives up waiting after `wait` and on abort, and leaves nothing queued', async () => {
      const resource = fresh('wait');
      const [a, b, c] = [await open(), await open(), await open()];
      const held = await a.acquire(resource);
      await expect(b.acquire(resource, { wait: 150 })).rejects.toBeInstanceOf(AcquireTimeoutError);
      const controller = new AbortController();
      const reason = new Error('caller gave up');
      const waiting = b.acquire(resource, { signal: controller.signal });
      setTimeout(() => controller.abort(reason), 100);
      await expect(waiting).rejects.toBe(reason);
      const preAborted = AbortSignal.abort(reason);
      await expect(b.acquire(resource, { signal: preAborted })).rejects.toBe(reason);
      await held.release();
      // Neither given-up waiter holds or is queued for the lock: a third provider gets it at once.
      const next = await c.tryAcquire(resource);
      expect(next).not.toBeNull();
      await next!.release();
      const again = await b.tryAcquire(resource);
      expect(again).not.toBeNull();
      await again!.release();
    });

    it('lets many waiters share one AbortSignal without a listener warning, and aborts them all', async () => {
      const resource = fresh('shared-signal');
      const [a, b] = [await open(), await open()];
      const held = await a.acquire(resource);
      const warnings: Error[] = [];
      const onWarning = (w: Error) => warnings.push(w);
      process.on('warning', onWarning);
      try {
        const controller = new AbortController();
        const reason = new Error('the batch was cancelled');
        const waiting = Array.from({ length: 25 }, () =>
          b.acquire(resource, { wait: 30_000, signal: controller.signal }),
        );
        await sleep(100);
        controller.abort(reason);
        const settled = await Promise.allSettled(waiting);
        expect(settled.every((r) => r.status === 'rejected' && r.reason === reason)).toBe(true);
        // Warnings are emitted on the next tick.
        await sleep(10);
        expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
      } finally {
        process.off('warning', onWarning);
        await held.release();
      }
      const next = await b.tryAcquire(resource);
      expect(next).not.toBeNull();
      await next!.release();
    });

    it('waits for a holder and gets the lock once it is released', async () => {
      const resource = fresh('handoff');
      const [a, b] = [await open(), await open()];
      const held = await a.acquire(resource);
      const waiting = b.acquire(resource, { wait: 30_000 });
      await sleep(50);
      await held.release();
      const lock = await waiting;
      expect(lock.held).toBe(true);
      await lock.release();
    });

    it('takes several resources all or nothing', async () => {
      const [x, y, z] = [fresh('multi-x'), fresh('multi-y'), fresh('multi-z')];
      const [a, b, c] = [await open(), await open(), await open()];
      const holdsY = await a.acquire(y);
      expect(await b.tryAcquire([x, y, z])).toBeNull();
      // The failed attempt kept neither x nor z.
      const onlyX = await c.tryAcquire([x, z]);
      expect(onlyX).not.toBeNull();
      expect(onlyX!.resources).toEqual([x, z]);
      await onlyX!.release();
      await holdsY.release();
      const all = await b.acquire([z, y, x], { wait: 30_000 });
      expect(Object.keys(all.fences).sort()).toEqual([x, y, z].sort());
      expect(await c.tryAcquire(y)).toBeNull();
      await all.release();
    });

    it('releases idempotently', async () => {
      const resource = fresh('release');
      const a = await open();
      const lock = await a.acquire(resource);
      await lock.release();
      await lock.release();
      await lock[Symbol.asyncDispose]();
      expect(lock.held).toBe(false);
      expect(lock.signal.reason).toBeInstanceOf(LockLostError);
      const again = await a.tryAcquire(resource);
      expect(again).not.toBeNull();
      await again!.release();
    });

    it('issues fencing tokens that strictly increase across successive holders', async () => {
      const resource = fresh('fence');
      const clients = [await open(), await open(), await open()];
      const fences: number[] = [];
      for (let i = 0; i < 9; i++) {
        const lock = await clients[i % 3]!.acquire(resource, { wait: 30_000 });
        expect(Number.isSafeInteger(lock.fence)).toBe(true);
        expect(lock.fences[resource]).toBe(lock.fence);
        fences.push(lock.fence!);
        await lock.release();
      }
      for (let i = 1; i < fences.length; i++) expect(fences[i]!).toBeGreaterThan(fences[i - 1]!);
    });

    it("using returns the routine's result, and its error wins over a failing release", async () => {
      const resource = fresh('using');
      const a = await open();
      expect(await a.using(resource, async (signal, lock) => [signal.aborted, lock.held])).toEqual([
        false,
        true,
      ]);
      const failure = new Error('the routine failed');
      await expect(
        a.using(resource, { ttl: 5000 }, async (_signal, lock: Lock) => {
          const release = lock.release.bind(lock);
          lock.release = async () => {
            await release();
            throw new Error('release failed');
          };
          throw failure;
        }),
      ).rejects.toBe(failure);
      await expect(
        a.using(resource, async () => {
          throw failure;
        }),
      ).rejects.toBe(failure);
    });

    it('rejects bad input with InvalidArgumentError before any I/O', async () => {
      const a = await open();
      // Connected and settled: from here on any I/O would show.
      const settle = await a.tryAcquire(fresh('settle'));
      await settle?.release();
      const before = await target.connections();
      const bad: Array<() => unknown> = [
        () => a.acquire(''),
        () => a.acquire([]),
        () => a.acquire(['r', 'r']),
        () => a.acquire('r', { ttl: -1 }),
        () => a.acquire('r', { wait: Number.NaN }),
        () => a.tryAcquire('r', { signal: 'no' as never }),
        () => a.acquire('r', { bogus: 1 } as never),
        () => a.using('r', { ttl: 0 }, async () => {}),
        () => a.using('r', undefined as never),
        () => a.inspect(42 as never),
        () => a.leader('', async () => {}),
      ];
      for (const call of bad) {
        await expect((async () => call())()).rejects.toBeInstanceOf(InvalidArgumentError);
      }
      await expect(connect(target.urls, { ttl: -5 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(connect(target.urls, { nope: true })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      await expect(connect('ftp://example.invalid/')).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await target.connections()).toBe(before);
    });

    it("hands leadership over when the leader's process is SIGKILLed", async () => {
      const resource = fresh('leader');
      const config = { urls: target.urls, resource, ttl: 1500 };
      const workers = [
        new Child('./provider-leader.mjs', { ...config, name: 'w0' }),
        new Child('./provider-leader.mjs', { ...config, name: 'w1' }),
      ];
      const first = await Promise.any(
        workers.map((w) => w.waitFor((e) => e.event === 'elected', { timeoutMs: 30_000 })),
      );
      const leader = workers.find((w) => w.events.includes(first))!;
      const other = workers.find((w) => w !== leader)!;
      leader.kill('SIGKILL');
      await leader.exited;
      const second = await other.waitFor((e) => e.event === 'elected', { timeoutMs: 30_000 });
      expect(second.name).not.toBe(first.name);
      expect(second.fence as number).toBeGreaterThan(first.fence as number);
      other.send({ cmd: 'stop' });
      await other.waitFor((e) => e.event === 'closed', { timeoutMs: 30_000 });
      expect((await other.exited).code).toBe(0);
    });

    it('leaves no handles open after close(): the process exits on its own', async () => {
      const resource = fresh('close');
      const child = new Child('./provider-close.mjs', { urls: target.urls, resource });
      const closed = await child.waitFor((e) => e.event === 'closed', { timeoutMs: 30_000 });
      expect(closed.held).toBe(false);
      const exit = await child.exited;
      expect(exit.code).toBe(0);
      const a = await open();
      const lock = await a.tryAcquire(resource, { wait: 30_000 });
      expect(lock).not.toBeNull();
      await lock!.release();
      await a.close();
      await a.close();
      await expect(a.acquire(resource)).rejects.toMatchObject({ code: 'ERR_LOCK_CLOSED' });
    });
  });
}

/** Registers the loss tests: each fault aborts the holder's signal with a LockLostError. */
export function describeLossContract(name: string, start: () => Promise<LossTarget>): void {
  describe(`lost signal: ${name}`, () => {
    let target: LossTarget;
    let proxy: FaultProxy | undefined;
    const providers: LockProvider[] = [];
    const TTL = 1000;
    const open = async (url?: string): Promise<LockProvider> => {
      const provider = await connect(url ?? target.urls, { ...FAST, ttl: TTL });
      providers.push(provider);
      return provider;
    };

    beforeAll(async () => {
      target = await start();
    });
    afterAll(async () => {
      target?.resume();
      await proxy?.close();
      await Promise.allSettled(providers.map((p) => p.close()));
      await target?.stop();
    });

    /** Holds a fresh resource, applies `fault`, and expects the lost signal. */
    async function expectLoss(
      fault: (state: LockState, lock: Lock) => Promise<void> | void,
      url?: string,
    ) {
      const resource = fresh('loss');
      const provider = await open(url);
      let called: LockLostError | undefined;
      const lock = await provider.acquire(resource, { onLost: (e) => (called = e) });
      const state = await provider.inspect(resource);
      expect(state.holder).not.toBeNull();
      const lost = aborted(lock.signal);
      await fault(state, lock);
      const reason = await lost;
      expect(reason).toBeInstanceOf(LockLostError);
      expect(called).toBe(reason);
      expect(lock.held).toBe(false);
      // Release after loss resolves, as for any ended lock.
      await lock.release();
      return { resource, reason: reason as LockLostError };
    }

    it("aborts the signal when the server ends the holder's session", async () => {
      const { resource } = await expectLoss((state) => target.terminate(state));
      const other = await open();
      const next = await other.tryAcquire(resource, { wait: 10_000 });
      expect(next).not.toBeNull();
      await next!.release();
    });

    it('aborts the signal when the server stops answering for longer than ttl (SIGSTOP)', async () => {
      await expectLoss(() => target.pause());
      target.resume();
    });

    it('aborts the signal when the server is killed', async () => {
      await expectLoss(() => target.kill());
      await target.restart();
      const other = await open();
      const lock = await other.tryAcquire(fresh('after-restart'));
      expect(lock).not.toBeNull();
      await lock!.release();
    });

    it('aborts the signal when the connection is blackholed', async () => {
      proxy = await startProxy(target.address);
      await expectLoss(() => proxy!.blackhole(true), target.via(proxy.port));
      proxy.blackhole(false);
    });
  });
}
