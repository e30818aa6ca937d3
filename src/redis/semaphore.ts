/**
 * A counting semaphore over the quorum: at most `limit` holders of one name
 * at a time. Each permit is one of `limit` numbered slots, and each slot is a
 * Redlock lock of its own (docs/safety.md §11 says why that, and not a count,
 * is what keeps the bound on a majority quorum).
 */
import { InvalidArgumentError } from '../errors.js';
import type { Lock } from '../lock.js';
import type { AcquireOptions } from '../options.js';
import { show } from '../options.js';
import {
  checkName,
  MAX_LIMIT,
  PermitEngine,
  type PermitHost,
  type PermitRoutine,
  type PermitSource,
  permitKeys,
} from './permits.js';

/** Options of `redlock.semaphore(name, options)`. */
export interface SemaphoreOptions {
  /** How many holders at once: an integer from 1 to 1000. Every client of the name must use the same. */
  readonly limit: number;
}

/**
 * A counting semaphore: `acquire`, `tryAcquire` and `using` hand out permits,
 * at most `limit` held at once, to waiters in the order they began waiting.
 * A permit is a `Lock` handle: `fence`, `signal`, `extend`, `release`, `await using`.
 */
export class Semaphore implements PermitSource {
  /** The semaphore's name. */
  readonly name: string;
  /** The most permits held at once. */
  readonly limit: number;
  readonly #permits: PermitEngine;

  /** @internal Made by `redlock.semaphore()`. */
  constructor(host: PermitHost, name: string, options: SemaphoreOptions) {
    this.name = checkName(name, 'semaphore()');
    this.limit = checkLimit(options);
    const keys = permitKeys(host.settings.keyPrefix, 'semaphore', name);
    this.#permits = new PermitEngine(host, name, 's', this.limit, keys);
  }

  acquire(options?: AcquireOptions): Promise<Lock> {
    return this.#permits.acquire(options);
  }

  tryAcquire(options?: AcquireOptions): Promise<Lock | null> {
    return this.#permits.tryAcquire(options);
  }

  using<T>(fn: PermitRoutine<T>): Promise<T>;
  using<T>(options: AcquireOptions, fn: PermitRoutine<T>): Promise<T>;
  using<T>(optionsOrFn: AcquireOptions | PermitRoutine<T>, maybeFn?: PermitRoutine<T>): Promise<T> {
    return this.#permits.using(optionsOrFn as AcquireOptions, maybeFn as PermitRoutine<T>);
  }
}

function checkLimit(options: unknown): number {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentError(
      `semaphore() options must be an object with a limit, got ${show(options)}`,
    );
  }
  for (const key of Object.keys(options)) {
    if (key !== 'limit')
      throw new InvalidArgumentError(`semaphore() options: unknown option "${key}"`);
  }
  const limit = (options as { limit?: unknown }).limit;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new InvalidArgumentError(
      `semaphore() options.limit must be an integer from 1 to ${MAX_LIMIT}, got ${show(limit)}`,
    );
  }
  return limit;
}
