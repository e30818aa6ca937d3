/**
 * Where the demo's nightly job keeps its work in the fenced store; shared by
 * the demo and its job.
 */

/** The store key holding one night's progress (`next`) and items (`item:<i>`). */
export function nightKey(night: number): string {
  return `demo:{nightly}:night:${night}`;
}

/** The one highest-token key shared by every night: the lock protects them all. */
export const STORE_FENCE_KEY = 'demo:{nightly}:highest-fence';

/** Exit code of a job whose write the store refused: it is no longer the holder. */
export const FENCED_OUT = 3;

/** The resource whose lock makes a host the scheduler, in the demo's leader election. */
export const SCHEDULER = 'nightly-scheduler';

/** The store key the elected scheduler writes its heartbeat to, through the fencing guard. */
export const SCHEDULER_HEARTBEAT = 'demo:{scheduler}:heartbeat';
