/**
 * Typed errors. Every error the library raises is a LockError with a stable
 * `code` that callers can switch on; messages say what to do about it.
 */

import type { NodeOutcome } from './outcome.js';

/** Stable error codes. */
export type LockErrorCode =
  | 'ERR_LOCK_TAKEN'
  | 'ERR_LOCK_QUORUM'
  | 'ERR_LOCK_ACQUIRE_TIMEOUT'
  | 'ERR_LOCK_LOST'
  | 'ERR_LOCK_INVALID_ARGUMENT'
  | 'ERR_LOCK_CLOSED'
  | 'ERR_LOCK_DRIVER_MISSING';

/** Base class of every error quorumlock raises. */
export class LockError extends Error {
  /** Stable, machine-readable error code. */
  readonly code: LockErrorCode;

  constructor(code: LockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The lock is held by another holder. */
export class LockTakenError extends LockError {
  /** The holder's remaining time to live in ms on a quorum of nodes, when known. */
  readonly holderTtl: number | undefined;
  /** Per-node outcomes of the round that found the lock taken. */
  readonly nodes: readonly NodeOutcome[];

  constructor(
    resources: readonly string[],
    holderTtl: number | undefined,
    nodes: readonly NodeOutcome[],
  ) {
    const ttl = holderTtl === undefined ? '' : ` for about ${Math.round(holderTtl)} ms more`;
    super('ERR_LOCK_TAKEN', `lock on ${describe(resources)} is held by another holder${ttl}`);
    this.holderTtl = holderTtl;
    this.nodes = nodes;
  }
}

/** Too many nodes failed or timed out for a quorum to be reached. */
export class QuorumError extends LockError {
  /** Per-node outcomes, with the cause of each failure. */
  readonly nodes: readonly NodeOutcome[];

  constructor(operation: string, quorum: number, nodes: readonly NodeOutcome[], reason?: string) {
    const failed = nodes.filter((n) => n.status === 'error' || n.status === 'timeout');
    const detail = failed
      .map((n) => `${n.node}: ${n.status}${n.cause ? ` (${causeText(n.cause)})` : ''}`)
      .join('; ');
    // The nodes are up: a Cluster node refused keys of several slots in one script.
    const crossSlot = failed.some((n) => n.cause && causeText(n.cause).startsWith('CROSSSLOT'));
    super(
      'ERR_LOCK_QUORUM',
      reason
        ? `${operation} failed: ${reason}`
        : `${operation} could not reach a quorum of ${quorum} of ${nodes.length} nodes` +
            (detail ? `: ${detail}` : '') +
            (crossSlot
              ? '; on a Redis Cluster node the resources of one lock must hash to one slot: give them a common hash tag, e.g. {order:7}:a and {order:7}:b'
              : '; check that a majority of the Redis nodes are up and reachable'),
      { cause: failed[0]?.cause },
    );
    this.nodes = nodes;
  }
}

/** `wait` ran out before the lock could be acquired. */
export class AcquireTimeoutError extends LockError {
  constructor(resources: readonly string[], waitMs: number, cause?: unknown) {
    super(
      'ERR_LOCK_ACQUIRE_TIMEOUT',
      `could not acquire ${describe(resources)} within ${waitMs} ms; raise \`wait\` or check who holds it`,
      { cause },
    );
  }
}

/** The lock was lost: it expired, renewal could not keep a majority, or it was released. */
export class LockLostError extends LockError {
  constructor(resources: readonly string[], reason: string, cause?: unknown) {
    super('ERR_LOCK_LOST', `lock on ${describe(resources)} is no longer held: ${reason}`, {
      cause,
    });
  }

  /** The reason a released lock's signal aborts with; built without a stack trace, on every release. */
  static released(resources: readonly string[]): LockLostError {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new LockLostError(resources, 'it was released');
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

/** Bad input, raised before any node is touched. */
export class InvalidArgumentError extends LockError {
  constructor(message: string) {
    super('ERR_LOCK_INVALID_ARGUMENT', message);
  }
}

/** The Redlock instance was closed. */
export class ClosedError extends LockError {
  constructor() {
    super('ERR_LOCK_CLOSED', 'this Redlock instance is closed; create a new one');
  }
}

/** A backend's driver package is not installed; the message names the package to install. */
export class MissingDriverError extends LockError {
  /** The npm package to install, such as `pg` or `mysql2`. */
  readonly packageName: string;

  constructor(packageName: string, backend: string, cause?: unknown) {
    super(
      'ERR_LOCK_DRIVER_MISSING',
      `the ${backend} backend needs the "${packageName}" package: run \`npm install ${packageName}\``,
      { cause },
    );
    this.packageName = packageName;
  }
}

function describe(resources: readonly string[]): string {
  return resources.length === 1
    ? `"${resources[0]}"`
    : `[${resources.map((r) => `"${r}"`).join(', ')}]`;
}

function causeText(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
