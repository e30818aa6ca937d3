/**
 * Abort helpers: cancellation follows the platform's AbortSignal.
 */

/**
 * Settles like `promise`, or rejects with the signal's reason as soon as
 * `signal` aborts. It listens to a signal derived from `signal`, never to
 * `signal` itself: callers may share one signal among many operations.
 */
export function raceSignal<T>(promise: Promise<T>, shared: AbortSignal): Promise<T> {
  if (shared.aborted) return Promise.reject(shared.reason);
  const signal = AbortSignal.any([shared]);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
