/**
 * A read-write lock over the quorum: any number of readers, or one writer.
 * Readers and writers wait in one queue, first come first served, so a writer
 * that is waiting holds back the readers that came after it: a stream of
 * readers cannot starve a writer.
 */
import type { PermitHost, PermitSource } from './permits.js';
import { checkName, PermitEngine, permitKeys } from './permits.js';

/**
 * A read-write lock. `read` hands out shared permits, `write` the exclusive
 * one; each has `acquire`, `tryAcquire` and `using`, and a permit is a `Lock`
 * handle. A writer's `fence` is above the fence of every permit, read or
 * write, held before it (docs/safety.md §11).
 */
export class ReadWriteLock {
  /** The lock's name. */
  readonly name: string;
  /** Shared permits: held by many readers at once, never beside a writer. */
  readonly read: PermitSource;
  /** The exclusive permit: one writer, and no reader beside it. */
  readonly write: PermitSource;

  /** @internal Made by `redlock.readWriteLock()`. */
  constructor(host: PermitHost, name: string) {
    this.name = checkName(name, 'readWriteLock()');
    const keys = permitKeys(host.settings.keyPrefix, 'rwlock', name);
    this.read = new PermitEngine(host, name, 'r', 0, keys);
    this.write = new PermitEngine(host, name, 'w', 0, keys);
  }
}
