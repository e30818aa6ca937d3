/**
 * Waiting between acquire rounds: capped exponential backoff with full
 * jitter, cut short by the holder's remaining ttl and by release notices
 * published on the nodes; and a local FIFO queue so waiters of one process
 * for the same resources take turns instead of stampeding the nodes.
 */
import { type Clock, sleep } from './clock.js';
import type { RetryOptions } from './options.js';

/** The backoff before retry number `attempt` (0-based): uniform in [0, min(maxDelay, minDelay·factor^attempt)]. */
export function backoffDelay(
  attempt: number,
  retry: Required<RetryOptions>,
  random: () => number = Math.random,
): number {
  const cap = Math.min(retry.maxDelay, retry.minDelay * retry.factor ** attempt);
  return random() * cap;
}

/** How many released values a waiter keeps counting notices for. */
const REMEMBERED = 8;

/**
 * Wakes a sleeping waiter early on release notices. One release is announced
 * by every node that held the key, each as it processes the release: retrying
 * on the first notice would race the release on the other nodes and lose the
 * round. So a waiter wakes once `needed` nodes (a quorum) have announced the
 * same release, or `graceMs` after the first notice, whichever is first.
 * A wake before `sleep()` makes the next sleep return at once, so a notice
 * that lands during a round is not lost.
 */
export class Wakeup {
  #pending = false;
  #pendingNotice = false;
  /** True when the last `sleep()` ended early because of a notice. */
  woken = false;
  #wake: ((byNotice: boolean) => void) | undefined;
  #cancelLook: (() => void) | undefined;
  #lookAt: number | undefined;
  readonly #counts = new Map<string, number>();
  #cancelGrace: (() => void) | undefined;
  readonly #clock: Clock;
  readonly #needed: number;
  readonly #graceMs: number;
  readonly #enough: number;
  readonly #settleMs: number;

  /**
   * @param needed notices of one release that wake at once.
   * @param graceMs wake this long after the first notice at the latest.
   * @param enough once this many notices arrived, wake within `settleMs`.
   */
  constructor(clock: Clock, needed = 1, graceMs = 0, enough = needed, settleMs = graceMs) {
    this.#clock = clock;
    this.#needed = needed;
    this.#graceMs = graceMs;
    this.#enough = Math.min(enough, needed);
    this.#settleMs = Math.min(settleMs, graceMs);
  }

  /**
   * Records `weight` notices of the release of `value` (unknown value: wake at
   * once), and wakes the current sleep when enough nodes have announced it.
   */
  notify(value?: string, weight = 1): void {
    if (value === undefined) {
      this.#fire();
      return;
    }
    const before = this.#counts.get(value) ?? 0;
    const count = before + weight;
    this.#counts.set(value, count);
    if (this.#counts.size > REMEMBERED) this.#counts.delete(this.#counts.keys().next().value!);
    if (before < this.#needed && count >= this.#needed) {
      this.#fire();
    } else if (before < this.#enough && count >= this.#enough && count < this.#needed) {
      this.#arm(this.#settleMs);
    } else if (before === 0 && count < this.#needed) {
      this.#arm(this.#graceMs);
    }
  }

  #arm(ms: number): void {
    this.#cancelGrace?.();
    this.#cancelGrace = this.#clock.setTimer(() => this.#fire(), ms, { keepAlive: false });
  }

  /**
   * Wakes the current (or next) sleep `ms` from now at the latest, without
   * counting as a notice (`woken` stays false).
   */
  wakeAfter(ms: number): void {
    const at = this.#clock.now() + ms;
    if (this.#lookAt !== undefined && this.#lookAt <= at) return;
    this.#lookAt = at;
    this.#cancelLook?.();
    this.#cancelLook = this.#clock.setTimer(
      () => {
        this.#lookAt = undefined;
        this.#cancelLook = undefined;
        this.#pending = true;
        this.#wake?.(false);
      },
      ms,
      { keepAlive: false },
    );
  }

  /** Stops the timers; the waiter is done. */
  dispose(): void {
    this.#cancelGrace?.();
    this.#cancelGrace = undefined;
    this.#cancelLook?.();
    this.#cancelLook = undefined;
  }

  #fire(): void {
    this.#cancelGrace?.();
    this.#cancelGrace = undefined;
    this.#pending = true;
    this.#pendingNotice = true;
    this.#wake?.(true);
  }

  /** Sleeps up to `ms`, returning early on a notice or rejecting when `signal` aborts. */
  async sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    this.woken = false;
    if (this.#pending) {
      this.woken = this.#pendingNotice;
      this.#pending = false;
      this.#pendingNotice = false;
      return;
    }
    const early = new AbortController();
    this.#wake = (byNotice) => {
      this.woken = byNotice;
      early.abort();
    };
    const onAbort = () => early.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await sleep(clock, ms, early.signal);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      void err;
    } finally {
      this.#wake = undefined;
      this.#pending = false;
      this.#pendingNotice = false;
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * Per-key FIFO turns. `enter(key)` resolves when every earlier entrant for the
 * same key has left; the returned function leaves (idempotent).
 */
export class LocalQueue {
  readonly #tails = new Map<string, { tail: Promise<void>; entrants: number }>();

  /** True while someone holds or waits for a turn on `key`. */
  busy(key: string): boolean {
    return this.#tails.has(key);
  }

  async enter(key: string, signal?: AbortSignal): Promise<() => void> {
    const entry = this.#tails.get(key) ?? { tail: Promise.resolve(), entrants: 0 };
    const previous = entry.tail;
    let leave!: () => void;
    const mine = new Promise<void>((resolve) => {
      leave = resolve;
    });
    // The next entrant waits for everyone before it, including entrants that
    // gave up early: their turn passes only once the ones before them are done.
    entry.tail = previous.then(() => mine);
    entry.entrants++;
    this.#tails.set(key, entry);
    let left = false;
    const exit = () => {
      if (left) return;
      left = true;
      leave();
      if (--entry.entrants === 0) this.#tails.delete(key);
    };
    if (signal) {
      if (signal.aborted) {
        exit();
        throw signal.reason;
      }
      let onAbort!: () => void;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      try {
        await Promise.race([previous, aborted]);
      } catch (err) {
        exit();
        throw err;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } else {
      await previous;
    }
    return exit;
  }
}
