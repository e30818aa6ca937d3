/**
 * Leader election on top of Lock: campaign until elected, run the leader's
 * routine while the lock is held and renewed, campaign again when it is lost.
 * A term ends when the lock is lost, when `stop()` resigns, or when the
 * routine throws; the next campaign starts only once the routine has returned,
 * so one process never runs two terms at once.
 */
import { sleep } from './clock.js';
import { ClosedError, InvalidArgumentError, LockLostError } from './errors.js';
import type { Lock } from './lock.js';
import { resolveTtl, show } from './options.js';
import type { LockProvider } from './provider.js';
import { backoffDelay } from './waiting.js';

/** Options of `provider.leader`. Durations are milliseconds. */
export interface LeaderOptions {
  /** Time to live of the leadership lock, ms; it is renewed about every ttl/3. Default: the instance's ttl. */
  readonly ttl?: number;
  /** Called when this process becomes leader, with the lock it holds, before the routine starts. */
  readonly onElected?: (lock: Lock) => void;
  /**
   * Called once per term when leadership ends (lost, resigned by `stop()`, the
   * routine failed, or the provider closed), with the reason the routine's signal carries.
   */
  readonly onLost?: (reason: LockLostError) => void;
  /**
   * Called with errors of the routine and of failed campaign rounds (nodes
   * unreachable). Without it, routine errors become process warnings.
   */
  readonly onError?: (error: unknown) => void;
}

/**
 * The routine a leader runs; `signal` aborts with a LockLostError when
 * leadership is lost or resigned. Returning keeps the leadership until then;
 * throwing resigns it and the campaign resumes.
 */
export type LeaderRoutine = (signal: AbortSignal, lock: Lock) => Promise<void> | void;

const OPTION_KEYS = ['ttl', 'onElected', 'onLost', 'onError'];

/**
 * A running campaign for leadership of one resource. It campaigns until
 * `stop()` or until its provider closes; it never rejects or throws from the
 * background.
 */
export class Leader implements AsyncDisposable {
  /** The provider this campaign runs on. */
  readonly provider: LockProvider;
  /** The provider this campaign runs on (the name from when it ran only on Redlock). */
  get redlock(): LockProvider {
    return this.provider;
  }
  /** The resource whose lock is the leadership. */
  readonly resource: string;
  /** The options given. */
  readonly options: LeaderOptions;
  readonly #routine: LeaderRoutine;
  readonly #ttl: number;
  readonly #stop = new AbortController();
  readonly #done: Promise<void>;
  #lock: Lock | undefined;
  #failures = 0;

  /** @internal Made by `provider.leader`; throws InvalidArgumentError on bad input, before any I/O. */
  constructor(
    provider: LockProvider,
    resource: string,
    options: LeaderOptions,
    routine: LeaderRoutine,
  ) {
    if (typeof resource !== 'string' || resource.length === 0) {
      throw new InvalidArgumentError(
        `leader resource must be a non-empty string, got ${show(resource)}`,
      );
    }
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new InvalidArgumentError(`leader options must be an object, got ${show(options)}`);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.includes(key)) {
        throw new InvalidArgumentError(
          `leader options has an unknown option "${key}"; known: ${OPTION_KEYS.join(', ')}`,
        );
      }
    }
    for (const key of ['onElected', 'onLost', 'onError'] as const) {
      if (options[key] !== undefined && typeof options[key] !== 'function') {
        throw new InvalidArgumentError(
          `leader options.${key} must be a function, got ${show(options[key])}`,
        );
      }
    }
    if (typeof routine !== 'function') {
      throw new InvalidArgumentError(`leader() needs a routine to run while elected`);
    }
    this.provider = provider;
    this.resource = resource;
    this.options = options;
    this.#routine = routine;
    this.#ttl = resolveTtl(options.ttl, provider.settings.ttl);
    this.#done = this.#campaign().catch((err: unknown) => {
      // Nobody awaits a campaign that ends by itself: it must never reject.
      process.emitWarning(`quorumlock leader campaign ended unexpectedly: ${String(err)}`);
    });
  }

  /** True from election until the term ends (lost, resigned, routine failed); false while campaigning. */
  get isLeader(): boolean {
    return this.#lock !== undefined;
  }

  /** The leadership lock while this process is leader; undefined otherwise. */
  get lock(): Lock | undefined {
    return this.#lock;
  }

  /**
   * Resolves once the campaign has ended for good — after `stop()` or when the
   * provider closed — and the last routine has returned. Never rejects.
   */
  get done(): Promise<void> {
    return this.#done;
  }

  /**
   * Stops campaigning and resigns: aborts the routine's signal, waits for the
   * routine to return, then releases the lock so another candidate is elected
   * at once. Idempotent; resolves like `done`.
   */
  stop(): Promise<void> {
    if (!this.#stop.signal.aborted) {
      this.#stop.abort(this.#resigned());
    }
    return this.#done;
  }

  /** `stop()` for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #campaign(): Promise<void> {
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      let lock: Lock;
      try {
        lock = await this.provider.acquire(this.resource, {
          ttl: this.#ttl,
          renew: true,
          signal: stop,
        });
      } catch (err) {
        if (stop.aborted || err instanceof ClosedError) return;
        // Too few nodes reachable: keep campaigning, with backoff.
        this.#notify('onError', err);
        await this.#pause();
        continue;
      }
      const failed = await this.#serve(lock);
      if (failed) await this.#pause();
      else this.#failures = 0;
    }
  }

  /** One term: runs the routine until the term ends; true when the routine threw. */
  async #serve(lock: Lock): Promise<boolean> {
    const term = new AbortController();
    const signal = AbortSignal.any([lock.signal, term.signal]);
    const resign = () => term.abort(this.#resigned());
    this.#stop.signal.addEventListener('abort', resign, { once: true });
    let ended!: () => void;
    const over = new Promise<void>((resolve) => {
      ended = resolve;
    });
    const end = () => {
      this.#lock = undefined;
      ended();
      this.#notify('onLost', signal.reason);
    };
    let failed = false;
    try {
      if (this.#stop.signal.aborted) resign();
      if (signal.aborted) return false;
      signal.addEventListener('abort', end, { once: true });
      this.#lock = lock;
      this.#notify('onElected', lock);
      const running = (async () => this.#routine(signal, lock))().then(
        () => {},
        (err: unknown) => {
          failed = true;
          if (!signal.aborted) {
            term.abort(new LockLostError([this.resource], 'the leader routine failed', err));
          }
          if (this.options.onError) this.#notify('onError', err);
          else process.emitWarning(`quorumlock leader routine failed: ${String(err)}`);
        },
      );
      await over;
      // Another term must not start, nor the lock be released, while this routine still runs.
      await running;
      return failed;
    } finally {
      this.#stop.signal.removeEventListener('abort', resign);
      // Resign only a lock we still hold: a lost lock expires on its own, and a
      // provider that closed has no connections left to release it with.
      if (lock.held) await lock.release().catch(() => {});
    }
  }

  /** Waits a backoff step before the next campaign round; returns early on stop. */
  async #pause(): Promise<void> {
    const delay = backoffDelay(this.#failures++, this.provider.settings.retry);
    await sleep(this.provider.clock, delay, this.#stop.signal).catch(() => {});
  }

  #resigned(): LockLostError {
    return new LockLostError([this.resource], 'leadership was resigned');
  }

  /** Calls a user callback; a throwing callback must not break the campaign. */
  #notify<K extends 'onElected' | 'onLost' | 'onError'>(
    name: K,
    arg: Parameters<NonNullable<LeaderOptions[K]>>[0],
  ): void {
    const callback = this.options[name] as ((arg: unknown) => void) | undefined;
    if (!callback) return;
    try {
      callback(arg);
    } catch (err) {
      process.emitWarning(`quorumlock leader ${name} callback threw: ${String(err)}`);
    }
  }
}
