/**
 * quorumlock: Redlock distributed locks over N independent Redis masters,
 * with fencing tokens, a lost-lock signal and push wake-ups for waiters.
 */

export { channels, type RoundEvent } from './diagnostics.js';
export {
  AcquireTimeoutError,
  ClosedError,
  InvalidArgumentError,
  LockError,
  type LockErrorCode,
  LockLostError,
  LockTakenError,
  MissingDriverError,
  QuorumError,
} from './errors.js';
export { Leader, type LeaderOptions, type LeaderRoutine } from './leader.js';
export { Lock } from './lock.js';
export type { AcquireOptions, RedlockOptions, RetryOptions, Settings } from './options.js';
export type { NodeOutcome, NodeStatus } from './outcome.js';
export {
  connect,
  type LockProvider,
  type LockState,
  type ProviderOptions,
  type ProviderRoutine,
  type ProviderSettings,
} from './provider.js';
export type { NodeSpec } from './redis/connect.js';
export * from './redis/guard.js';
export type { PermitRoutine, PermitSource } from './redis/permits.js';
export { type NodeState, Redlock, type ResourceState, type UsingRoutine } from './redis/redlock.js';
export { ReadWriteLock } from './redis/rwlock.js';
export { Semaphore, type SemaphoreOptions } from './redis/semaphore.js';
