/**
 * Leader election on top of Lock: campaign until elected, run the leader's
 * routine while the lock is held and renewed, campaign again when it is lost.
 */
import type { Lock } from './lock.js';
import type { Redlock } from './redlock.js';

/** Options of `redlock.leader`. Durations are milliseconds. */
export interface LeaderOptions {
  /** Time to live of the leadership lock, ms. Default: the instance's ttl. */
  readonly ttl?: number;
  /** Called when this process becomes leader, with the lock it holds. */
  readonly onElected?: (lock: Lock) => void;
  /** Called when leadership ends (lost or resigned), with the reason. */
  readonly onLost?: (reason: unknown) => void;
}

/** The routine a leader runs; `signal` aborts when leadership is lost or resigned. */
export type LeaderRoutine = (signal: AbortSignal, lock: Lock) => Promise<void> | void;

/** A running campaign for leadership of one resource. */
export class Leader {
  /** @internal Made by `redlock.leader`. */
  constructor(
    readonly redlock: Redlock,
    readonly resource: string,
    readonly options: LeaderOptions,
    readonly routine: LeaderRoutine,
  ) {
    throw new Error('not implemented');
  }
}
