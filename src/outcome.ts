/**
 * What happened on each node (or server) in a round: the outcome type every
 * backend reports in locks, errors and diagnostics.
 */

/** What happened on one node in a round. */
export type NodeStatus =
  /** The node holds the lock for us (acquired or extended). */
  | 'acquired'
  /** Another holder has it on this node (or, for extend, ours is gone). */
  | 'taken'
  /** Our keys are gone from this node (released now or already). */
  | 'released'
  /** The node answered with an error, or could not be reached. */
  | 'error'
  /** The node did not answer within `nodeTimeout`. */
  | 'timeout'
  /** The round was decided before this node answered. */
  | 'pending';

/** The outcome of one node in a round. */
export interface NodeOutcome {
  /** The node's label, such as `127.0.0.1:6379`. */
  readonly node: string;
  readonly status: NodeStatus;
  /** Milliseconds from the start of the round to this node's answer. */
  readonly latencyMs?: number;
  /** Why the node failed, for `error` and `timeout`. */
  readonly cause?: unknown;
  /** For `taken`: the other holder's remaining ttl on this node, in ms. */
  readonly holderTtl?: number;
}
