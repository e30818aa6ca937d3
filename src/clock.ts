/**
 * Time for the algorithm. Everything that measures elapsed time or sleeps goes
 * through a Clock, so tests and the simulation can drive time themselves.
 * All values are milliseconds.
 */
export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin; never goes backwards. */
  now(): number;
  /** Wall-clock epoch milliseconds, used only to report `validUntil` to humans. */
  wallNow(): number;
  /**
   * Runs `fn` after `ms`; the returned function cancels it. With
   * `keepAlive: false` a pending timer does not keep the process running.
   */
  setTimer(fn: () => void, ms: number, options?: { keepAlive?: boolean }): () => void;
}

/** The process clock: `performance.now()` for elapsed time, real timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer(fn, ms, options) {
    const handle = setTimeout(fn, Math.max(0, ms));
    if (options?.keepAlive === false) handle.unref();
    return () => clearTimeout(handle);
  },
};

/**
 * Resolves after `ms` on `clock`, or rejects with the signal's reason as soon
 * as `signal` aborts. The timer never keeps running after either happens.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      cancel();
      reject(signal?.reason);
    };
    const cancel = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
