/**
 * The contract every backend fulfils, and the core they share. A backend
 * (Redis, PostgreSQL, MySQL, ZooKeeper) says only how to try once, how to
 * confirm a hold (extend or probe), how to release and how to inspect; the
 * acquire loop (wait, signal, backoff, wake-ups), `using`, leader election,
 * renewal and the lost signal live here and in lock.ts, once.
 *
 * The core imports no backend: `connect` loads the one a URL names with a
 * dynamic import, so a Redis-only user never loads a database driver.
 */
import { randomBytes } from 'node:crypto';
import { raceSignal } from './abort.js';
import { type Clock, systemClock } from './clock.js';
import { publish } from './diagnostics.js';
import {
  AcquireTimeoutError,
  ClosedError,
  InvalidArgumentError,
  LockTakenError,
  QuorumError,
} from './errors.js';
import { Leader, type LeaderOptions, type LeaderRoutine } from './leader.js';
import { type ExtendResult, Lock, type LockContext } from './lock.js';
import {
  type AcquireOptions,
  type AcquireSettings,
  type RetryOptions,
  resolveAcquire,
  resolveResources,
  resolveSettings,
  type Settings,
  show,
} from './options.js';
import type { NodeOutcome } from './outcome.js';
import { backoffDelay, Wakeup } from './waiting.js';

/** What `inspect` tells about a resource on any backend; backends add their own detail. */
export interface LockState {
  readonly resource: string;
  /** An identifier of the current holder (on Redis its lock value), or null when free. */
  readonly holder: string | null;
}

/** The critical section run by `using`: gets the lost-lock signal and the lock. */
export type ProviderRoutine<T> = (signal: AbortSignal, lock: Lock) => Promise<T> | T;

/** The settings of a provider that its callers (leader election, the CLI) read. */
export interface ProviderSettings {
  /** Default lock time to live, ms. */
  readonly ttl: number;
  /** Backoff between tries while waiting. */
  readonly retry: Required<RetryOptions>;
  /** Whether locks carry fencing tokens. */
  readonly fencing: boolean;
}

/**
 * A lock service: the one API every backend offers (docs/architecture.md,
 * "The contract"). `Redlock` is the Redis provider; `connect(url)` returns the
 * provider a URL names.
 */
export interface LockProvider extends AsyncDisposable {
  /** Resolved settings. */
  readonly settings: ProviderSettings;
  /** The clock the provider runs on. @internal */
  readonly clock: Clock;
  /**
   * Acquires `resources` (one name or several, all-or-nothing), waiting until
   * it holds them, `wait` ms pass (AcquireTimeoutError) or `signal` aborts
   * (rejects with its reason). Not reentrant: a resource this provider holds
   * is as taken as one another process holds.
   */
  acquire(resources: string | readonly string[], options?: AcquireOptions): Promise<Lock>;
  /** Tries once (or for `wait` ms when given); null when another holder has it. */
  tryAcquire(resources: string | readonly string[], options?: AcquireOptions): Promise<Lock | null>;
  /**
   * Acquires, runs `fn(signal, lock)` with the lock kept alive, always
   * releases; `fn`'s own error is never replaced by a release error.
   */
  using<T>(resources: string | readonly string[], fn: ProviderRoutine<T>): Promise<T>;
  using<T>(
    resources: string | readonly string[],
    options: AcquireOptions,
    fn: ProviderRoutine<T>,
  ): Promise<T>;
  /** Campaigns for leadership of `resource` until `stop()`. */
  leader(resource: string, options: LeaderOptions, fn: LeaderRoutine): Leader;
  leader(resource: string, fn: LeaderRoutine): Leader;
  /** Who holds `resource` now, as the store sees it. */
  inspect(resource: string): Promise<LockState>;
  /** Stops renewals (held locks are abandoned), rejects pending acquisitions, closes connections. */
  close(): Promise<void>;
}

/** One try, as the core asks a backend for it. */
export interface TryRequest {
  readonly resources: readonly string[];
  readonly ttl: number;
  /** The new holder's unguessable value. */
  readonly value: string;
  /** Milliseconds this try may wait in the store's own queue (0: do not wait). */
  readonly wait: number;
  /** Aborts the try; a backend must leave nothing queued on the store when it does. */
  readonly signal: AbortSignal;
  /**
   * Declares the lock lost (session died, connection closed). Call it from the
   * moment the try holds anything; before the lock exists it is remembered.
   */
  readonly lose: (reason: string, cause?: unknown) => void;
}

/** What one try found. */
export type TryOutcome<H> =
  | {
      readonly kind: 'acquired';
      /** Whatever the backend needs to extend and release this hold. */
      readonly handle: H;
      /** Fencing token per resource (empty when fencing is off). */
      readonly fences: Readonly<Record<string, number>>;
      /** Monotonic time by which the hold must be confirmed again, ms. */
      readonly deadline: number;
      readonly outcomes: readonly NodeOutcome[];
    }
  | {
      readonly kind: 'taken';
      /** The holder's remaining time, when the store knows it. */
      readonly holderTtl?: number;
      readonly outcomes: readonly NodeOutcome[];
    };

/**
 * What a backend plugs into the core: how to try, confirm, release and
 * inspect. Every method throws only LockErrors (the driver's error as
 * `cause`); a failure to reach the store is a QuorumError.
 */
export interface LockBackend<H, S extends LockState = LockState> {
  /**
   * Holds are confirmed in the background whether or not `renew` is asked
   * (a session that must be probed), not only when renewing a ttl.
   */
  readonly alwaysConfirm: boolean;
  /**
   * Tries once to take every resource of the request, all or nothing. A
   * QuorumError (store unreachable) is retried within `wait`; any other error
   * ends the acquisition.
   */
  try(request: TryRequest): Promise<TryOutcome<H>>;
  /** Extends (or confirms) the hold for `ttl` ms from now. Never rejects. */
  extend(handle: H, resources: readonly string[], ttl: number): Promise<ExtendResult>;
  /** Releases the hold; idempotent; resolves when the hold is already gone. */
  release(handle: H, resources: readonly string[]): Promise<readonly NodeOutcome[]>;
  /**
   * The hold was declared lost (or its provider closed) without a release:
   * give up whatever may still hold it. Without it, the hold ends on its own (a ttl).
   */
  drop?(handle: H, resources: readonly string[]): void;
  /** Reads who holds `resource`. */
  inspect(resource: string): Promise<S>;
  /** Closes every connection the backend opened. */
  close(): Promise<void>;
}

/** Options every provider built on the core accepts; durations are ms. */
export interface ProviderOptions {
  /** Default lock time to live (SQL: longest time without confirming the session), ms. Default 30 000. */
  readonly ttl?: number;
  /** Backoff between tries while waiting. */
  readonly retry?: RetryOptions;
  /** Issue fencing tokens (`lock.fence`). Default true. */
  readonly fencing?: boolean;
  /** Renew locks from `acquire` in the background by default. Default false. */
  readonly renew?: boolean;
}

const CORE_KEYS = ['ttl', 'retry', 'fencing', 'renew'];

/** Longest an aborted acquire waits for its backend to leave the store's queue, ms. */
const ABORT_SETTLE_MS = 2000;

/** Consecutive failed tries (store unreachable) after which acquire gives up. */
const MAX_FAILED_TRIES = 3;

/**
 * Splits and validates provider options: the core's own (`ttl`, `retry`,
 * `fencing`, `renew`) and the backend's `keys`. Throws InvalidArgumentError
 * on anything else, before any I/O.
 */
export function resolveProviderOptions(
  options: unknown,
  keys: readonly string[],
): { settings: Settings; rest: Record<string, unknown> } {
  if (options === undefined) return { settings: resolveSettings(undefined, 1), rest: {} };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentError(`options must be an object, got ${show(options)}`);
  }
  const core: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (CORE_KEYS.includes(key)) core[key] = value;
    else if (keys.includes(key)) rest[key] = value;
    else {
      throw new InvalidArgumentError(
        `options has an unknown option "${key}"; known: ${[...CORE_KEYS, ...keys].join(', ')}`,
      );
    }
  }
  return { settings: resolveSettings(core, 1), rest };
}

/**
 * The shared core: a LockProvider over one backend. Backend classes
 * (PostgresLocks, MySqlLocks, …) are this core with their backend plugged in.
 */
export class BackendProvider<H, S extends LockState = LockState> implements LockProvider {
  /** Resolved settings. */
  readonly settings: Settings;
  readonly #backend: LockBackend<H, S>;
  readonly #clock: Clock;
  /** Locks held now (abandoned on close). */
  readonly #held = new Set<Lock>();
  /** The backend's handle of every lock not yet released. */
  readonly #handles = new WeakMap<Lock, H>();
  readonly #releasing = new WeakSet<Lock>();
  readonly #waiters = new Map<string, Set<Wakeup>>();
  readonly #aborts = new Set<AbortController>();
  readonly #background = new Set<Promise<unknown>>();
  readonly #ctx: LockContext;
  #closed: Promise<void> | undefined;

  /** @internal Made by a backend's class or `connect`; `settings` come from resolveProviderOptions. */
  constructor(backend: LockBackend<H, S>, settings: Settings, clock: Clock = systemClock) {
    this.#backend = backend;
    this.settings = settings;
    this.#clock = clock;
    this.#ctx = {
      clock,
      extend: (lock, ttl) => this.#extend(lock, ttl),
      release: (lock) => this.#release(lock),
      forget: (lock) => this.#forget(lock),
    };
  }

  /** The clock this provider runs on. @internal */
  get clock(): Clock {
    return this.#clock;
  }

  async acquire(resources: string | readonly string[], options?: AcquireOptions): Promise<Lock> {
    const a = resolveAcquire(resources, options, this.settings, Number.POSITIVE_INFINITY);
    const result = await this.#acquire(a);
    if (result instanceof Lock) return result;
    throw result;
  }

  async tryAcquire(
    resources: string | readonly string[],
    options?: AcquireOptions,
  ): Promise<Lock | null> {
    const a = resolveAcquire(resources, options, this.settings, 0);
    const result = await this.#acquire(a);
    return result instanceof Lock ? result : null;
  }

  async using<T>(resources: string | readonly string[], fn: ProviderRoutine<T>): Promise<T>;
  async using<T>(
    resources: string | readonly string[],
    options: AcquireOptions,
    fn: ProviderRoutine<T>,
  ): Promise<T>;
  async using<T>(
    resources: string | readonly string[],
    optionsOrFn: AcquireOptions | ProviderRoutine<T>,
    maybeFn?: ProviderRoutine<T>,
  ): Promise<T> {
    return runUsing(this, this.settings, resources, optionsOrFn, maybeFn);
  }

  leader(resource: string, options: LeaderOptions, fn: LeaderRoutine): Leader;
  leader(resource: string, fn: LeaderRoutine): Leader;
  leader(
    resource: string,
    optionsOrFn: LeaderOptions | LeaderRoutine,
    maybeFn?: LeaderRoutine,
  ): Leader {
    return startLeader(this, resource, optionsOrFn, maybeFn);
  }

  async inspect(resource: string): Promise<S> {
    if (typeof resource !== 'string') {
      throw new InvalidArgumentError(`inspect() takes one resource name, got ${show(resource)}`);
    }
    const [name] = resolveResources(resource);
    this.#checkOpen();
    return this.#backend.inspect(name!);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = (async () => {
        for (const controller of this.#aborts) controller.abort(new ClosedError());
        for (const lock of [...this.#held]) lock.abandon('the provider was closed');
        while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
        await this.#backend.close();
      })();
    }
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError();
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#background.add(promise);
    const done = () => this.#background.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /** Tries, backs off with full jitter (waking early on releases in this process), tries again. */
  async #acquire(a: AcquireSettings): Promise<Lock | AcquireTimeoutError> {
    this.#checkOpen();
    if (a.signal?.aborted) throw a.signal.reason;
    const clock = this.#clock;
    const controller = new AbortController();
    this.#aborts.add(controller);
    // Derived, not listened to: many waiters may share the caller's signal.
    const signal = a.signal ? AbortSignal.any([a.signal, controller.signal]) : controller.signal;
    const deadline = clock.now() + a.wait;
    const wake = new Wakeup(clock);
    for (const r of a.resources) {
      const set = this.#waiters.get(r) ?? new Set();
      this.#waiters.set(r, set);
      set.add(wake);
    }
    const prefix = randomBytes(16).toString('base64url');
    let round = 0;
    let failures = 0;
    let lastTaken: TryOutcome<H> | undefined;
    let waiting = false;
    try {
      for (;;) {
        const outcome = await this.#try(a, `${prefix}.${round++}`, deadline, signal).catch(
          (err: unknown) => {
            // Only a store that could not be reached is worth another try.
            if (signal.aborted || !(err instanceof QuorumError)) throw err;
            failures++;
            if (failures >= MAX_FAILED_TRIES || deadline - clock.now() <= 0) throw err;
            return undefined;
          },
        );
        if (outcome instanceof Lock) return outcome;
        if (outcome) {
          failures = 0;
          lastTaken = outcome;
        }
        const left = deadline - clock.now();
        if (left <= 0) {
          const taken =
            lastTaken?.kind === 'taken'
              ? new LockTakenError(a.resources, lastTaken.holderTtl, lastTaken.outcomes)
              : undefined;
          return new AcquireTimeoutError(a.resources, a.wait, taken);
        }
        if (!waiting) {
          waiting = true;
          publish('wait', () => ({ resources: a.resources, waiting: true }));
        }
        const holderTtl = lastTaken?.kind === 'taken' ? lastTaken.holderTtl : undefined;
        const delay = Math.min(
          backoffDelay(round - 1, this.settings.retry),
          holderTtl ?? Number.POSITIVE_INFINITY,
          left,
        );
        await wake.sleep(clock, delay, signal);
      }
    } finally {
      if (waiting) publish('wait', () => ({ resources: a.resources, waiting: false }));
      this.#aborts.delete(controller);
      wake.dispose();
      for (const r of a.resources) {
        const set = this.#waiters.get(r);
        set?.delete(wake);
        if (set?.size === 0) this.#waiters.delete(r);
      }
    }
  }

  /** One try: a Lock, or the taken outcome. A hold won after an abort is given back. */
  async #try(
    a: AcquireSettings,
    value: string,
    deadline: number,
    signal: AbortSignal,
  ): Promise<Lock | TryOutcome<H>> {
    const clock = this.#clock;
    let lock: Lock | undefined;
    let lostEarly: { reason: string; cause: unknown } | undefined;
    const startedAt = clock.now();
    const pending = this.#backend.try({
      resources: a.resources,
      ttl: a.ttl,
      value,
      wait: Math.max(0, deadline - startedAt),
      signal,
      lose: (reason, cause) => {
        if (lock) lock.abandon(reason, cause);
        else lostEarly ??= { reason, cause };
      },
    });
    let outcome: TryOutcome<H>;
    try {
      outcome = await raceSignal(pending, signal);
    } catch (err) {
      if (signal.aborted) {
        // The try may still win after we stopped waiting for it: give it back then.
        const givenBack = this.#track(
          pending.then(
            (late) => {
              if (late.kind === 'acquired') return this.#backend.release(late.handle, a.resources);
              return undefined;
            },
            () => undefined,
          ),
        );
        // The backend leaves the store's queue on abort; reject once it has (within a bound,
        // for a store that no longer answers), so nothing is left queued when the caller resumes.
        await new Promise<void>((resolve) => {
          const cancel = clock.setTimer(resolve, ABORT_SETTLE_MS, { keepAlive: false });
          givenBack.then(() => {
            cancel();
            resolve();
          });
        });
      }
      throw err;
    }
    publish('acquire', () => ({
      resources: a.resources,
      ok: outcome.kind === 'acquired',
      ...(outcome.kind === 'acquired' ? { fences: outcome.fences } : { reason: 'taken' }),
      durationMs: clock.now() - startedAt,
      nodes: outcome.outcomes,
    }));
    if (outcome.kind !== 'acquired') return outcome;
    if (signal.aborted || lostEarly) {
      await this.#backend.release(outcome.handle, a.resources).catch(() => {});
      if (signal.aborted) throw signal.reason;
      return { kind: 'taken', outcomes: outcome.outcomes };
    }
    lock = new Lock(this.#ctx, {
      resources: a.resources,
      value,
      fences: outcome.fences,
      ttl: a.ttl,
      deadline: outcome.deadline,
      nodes: outcome.outcomes,
      renew: a.renew || this.#backend.alwaysConfirm,
      onLost: a.onLost,
    });
    this.#handles.set(lock, outcome.handle);
    this.#held.add(lock);
    return lock;
  }

  /** The lock ended: released (its release is under way) or lost (the backend drops the hold). */
  #forget(lock: Lock): void {
    this.#held.delete(lock);
    if (this.#releasing.has(lock)) return;
    const handle = this.#handles.get(lock);
    if (handle !== undefined) this.#backend.drop?.(handle, lock.resources);
  }

  async #extend(lock: Lock, ttl: number): Promise<ExtendResult> {
    const handle = this.#handles.get(lock);
    if (this.#closed || handle === undefined) {
      return { deadline: undefined, gone: false, outcomes: [], error: new ClosedError() };
    }
    const startedAt = this.#clock.now();
    const result = await this.#track(this.#backend.extend(handle, lock.resources, ttl));
    publish('extend', () => ({
      resources: lock.resources,
      ok: result.deadline !== undefined,
      durationMs: this.#clock.now() - startedAt,
      nodes: result.outcomes,
    }));
    return result;
  }

  async #release(lock: Lock): Promise<readonly NodeOutcome[]> {
    const handle = this.#handles.get(lock);
    this.#releasing.add(lock);
    this.#handles.delete(lock);
    if (handle === undefined) return [];
    const startedAt = this.#clock.now();
    let error: unknown;
    let outcomes: readonly NodeOutcome[] = [];
    try {
      outcomes = await this.#track(this.#backend.release(handle, lock.resources));
      return outcomes;
    } catch (err) {
      error = err;
      throw err;
    } finally {
      // Waiters in this process try again at once.
      for (const r of lock.resources) for (const wake of this.#waiters.get(r) ?? []) wake.notify();
      publish('release', () => ({
        resources: lock.resources,
        ok: error === undefined,
        durationMs: this.#clock.now() - startedAt,
        nodes: outcomes,
        ...(error === undefined ? {} : { error }),
      }));
    }
  }
}

/**
 * `using` for any provider: checks the caller's options as given, acquires
 * with renewal on, runs `fn` and always releases; `fn`'s error wins over a
 * release error.
 */
export async function runUsing<T>(
  provider: Pick<LockProvider, 'acquire'>,
  settings: Settings,
  resources: string | readonly string[],
  optionsOrFn: AcquireOptions | ProviderRoutine<T>,
  maybeFn?: ProviderRoutine<T>,
): Promise<T> {
  const fn = typeof optionsOrFn === 'function' ? optionsOrFn : maybeFn;
  const options = typeof optionsOrFn === 'function' ? undefined : optionsOrFn;
  if (
    options !== undefined &&
    (options === null || typeof options !== 'object' || Array.isArray(options))
  ) {
    throw new InvalidArgumentError(`using() options must be an object, got ${show(options)}`);
  }
  if (typeof fn !== 'function')
    throw new InvalidArgumentError('using() needs a function to run under the lock');
  resolveAcquire(resources, options, settings, Number.POSITIVE_INFINITY);
  const lock = await provider.acquire(resources, { ...options, renew: true });
  let result: T;
  try {
    result = await fn(lock.signal, lock);
  } catch (err) {
    await lock.release().catch(() => {});
    throw err;
  }
  // The routine finished; its result stands whatever release does.
  await lock.release().catch(() => {});
  return result;
}

/** `leader()` for any provider: both overloads' arguments to a campaign. */
export function startLeader(
  provider: LockProvider,
  resource: string,
  optionsOrFn: LeaderOptions | LeaderRoutine,
  maybeFn?: LeaderRoutine,
): Leader {
  const fn = typeof optionsOrFn === 'function' ? optionsOrFn : maybeFn;
  const options = typeof optionsOrFn === 'function' ? {} : optionsOrFn;
  return new Leader(provider, resource, options, fn as LeaderRoutine);
}

/** The backend modules `connect` can load, by URL scheme. */
const SCHEMES: Readonly<Record<string, string>> = {
  'redis:': 'redis',
  'rediss:': 'redis',
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'mysql:': 'mysql',
  'mariadb:': 'mysql',
  'zk:': 'zookeeper',
};

/**
 * The module of each backend but Redis (Redlock). A backend module exports
 * `openProvider(urls: string[], options?: object): LockProvider | Promise<LockProvider>`.
 */
const MODULES: Readonly<Record<string, string>> = {
  postgres: './postgres/index.js',
  mysql: './mysql/index.js',
  zookeeper: './zookeeper/index.js',
};

/** A backend module as `connect` loads it. */
export interface BackendModule {
  openProvider(urls: readonly string[], options?: object): LockProvider | Promise<LockProvider>;
}

/** The backend a URL names: `redis`, `postgres`, `mysql` or `zookeeper`; undefined for others. */
export function backendOf(url: string): string | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(url)?.[1]?.toLowerCase();
  return scheme === undefined ? undefined : SCHEMES[scheme];
}

/**
 * Splits a node list as given on a command line or in an environment
 * variable: commas separate Redis URLs, but a `zk://` URL lists its hosts
 * with commas and is never split.
 */
export function splitNodeList(text: string): string[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const out: string[] = [];
  for (const part of parts) {
    const last = out.length > 0 ? out[out.length - 1]! : undefined;
    if (last !== undefined && backendOf(last) === 'zookeeper' && backendOf(part) === undefined) {
      out[out.length - 1] = `${last},${part}`;
    } else {
      out.push(part);
    }
  }
  return out;
}

/**
 * Opens the provider the URL(s) name: `redis://` (several: Redlock over N
 * masters; one string may list them with commas), `postgres://`,
 * `mysql://` / `mariadb://`, `zk://h1:2181,h2:2181/chroot`. The backend's
 * module and driver load only now; a missing driver rejects with
 * MissingDriverError naming the package to install.
 */
export async function connect(
  urls: string | readonly string[],
  options?: object,
): Promise<LockProvider> {
  const list = typeof urls === 'string' ? splitNodeList(urls) : urls;
  if (!Array.isArray(list) || list.length === 0 || list.some((u) => typeof u !== 'string')) {
    throw new InvalidArgumentError(
      `connect() takes a URL or a non-empty array of URLs, got ${show(urls)}`,
    );
  }
  const kinds = new Set(list.map((u) => backendOf(u)));
  const [kind] = kinds;
  if (kinds.size !== 1 || kind === undefined) {
    throw new InvalidArgumentError(
      `connect() needs URLs of one backend: redis://, postgres://, mysql:// or zk://; got ${list
        .map((u) => JSON.stringify(u.replace(/\/\/[^@/]*@/, '//***@')))
        .join(', ')}`,
    );
  }
  if (kind !== 'redis' && list.length !== 1) {
    throw new InvalidArgumentError(`connect() takes one ${kind} URL, got ${list.length}`);
  }
  if (kind === 'redis') {
    const { Redlock } = await import('./redis/redlock.js');
    const provider: LockProvider = new Redlock(list, options as never);
    return provider;
  }
  const specifier = MODULES[kind]!;
  const module = (await import(specifier)) as BackendModule;
  return module.openProvider(list, options);
}
