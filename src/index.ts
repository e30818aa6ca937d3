/**
 * quorumlock: Redlock distributed locks over N independent Redis masters,
 * with fencing tokens, a lost-lock signal and push wake-ups for waiters.
 */
export type { NodeSpec } from './connect.js';
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
export * from './guard.js';
export { Leader, type LeaderOptions, type LeaderRoutine } from './leader.js';
export { Lock } from './lock.js';
export type { AcquireOptions, RedlockOptions, RetryOptions, Settings } from './options.js';
export type { PermitRoutine, PermitSource } from './permits.js';
export {
  connect,
  type LockProvider,
  type LockState,
  type ProviderOptions,
  type ProviderRoutine,
  type ProviderSettings,
} from './provider.js';
export type { NodeOutcome, NodeStatus } from './quorum.js';
export { type NodeState, Redlock, type ResourceState, type UsingRoutine } from './redlock.js';
export { ReadWriteLock } from './rwlock.js';
export { Semaphore, type SemaphoreOptions } from './semaphore.js';
