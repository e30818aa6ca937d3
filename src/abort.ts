/**
 * Abort helpers: cancellation follows the platform's AbortSignal.
 */

/**
 * Settles like `promise`, or rejects with the signal's reason as soon as
 * `signal` aborts. It listens to `signal`: pass a signal that many operations
 * share (the caller's, an instance's closing signal) through
 * `AbortSignal.any([shared])`, so that they do not pile listeners on it.
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
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
