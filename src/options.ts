/**
 * Options and their validation. Everything here runs before any I/O, so bad
 * input fails with an InvalidArgumentError and touches no node.
 */
import { InvalidArgumentError } from './errors.js';

/** Retry policy between acquire rounds: capped exponential backoff with full jitter. */
export interface RetryOptions {
  /** Backoff cap of the first retry, ms. Default 10. */
  readonly minDelay?: number;
  /** Largest backoff cap, ms. Default 250. */
  readonly maxDelay?: number;
  /** Growth of the cap per failed round. Default 2. */
  readonly factor?: number;
}

/** Options of a Redlock instance; all optional. Durations are milliseconds. */
export interface RedlockOptions {
  /** Lock time to live, ms. Default 30 000. */
  readonly ttl?: number;
  /** Clock drift allowance as a fraction of ttl. Default 0.01. */
  readonly driftFactor?: number;
  /** Fixed clock drift allowance, ms. Default 2. */
  readonly driftMs?: number;
  /**
   * Deadline of each call to one node, ms. Default: learned per node from its
   * measured round trips (2 × (smoothed RTT + 4 × deviation), at least 50 ms;
   * 1 s before the first reply), the slowest node's, at most ttl/4.
   */
  readonly nodeTimeout?: number;
  /** Nodes that must agree. Default ⌊N/2⌋+1; values ≤ N/2 are rejected. */
  readonly quorum?: number;
  /** Prefix of every key written. Default `quorumlock:`. */
  readonly keyPrefix?: string;
  /** Backoff between rounds while waiting for a lock. */
  readonly retry?: RetryOptions;
  /** Issue fencing tokens (`lock.fence`). Default true. */
  readonly fencing?: boolean;
  /** Renew locks from `acquire` in the background by default. Default false (`using` always renews). */
  readonly renew?: boolean;
}

/** Options of one acquisition. Durations are milliseconds. */
export interface AcquireOptions {
  /** Time to live of this lock, ms. Default: the instance's ttl. */
  readonly ttl?: number;
  /** How long to keep trying, ms; `Infinity` waits without limit. Default: no limit (`tryAcquire`: 0). */
  readonly wait?: number;
  /** Aborts waiting; the promise rejects with the signal's reason and nothing is left behind. */
  readonly signal?: AbortSignal;
  /** Renew the lock in the background until it is released. */
  readonly renew?: boolean;
  /** Called once if the lock is lost (also reflected by `lock.signal`). */
  readonly onLost?: (error: import('./errors.js').LockLostError) => void;
}

/** Resolved instance settings. */
export interface Settings {
  readonly ttl: number;
  readonly driftFactor: number;
  readonly driftMs: number;
  readonly nodeTimeout: number | undefined;
  readonly quorum: number;
  readonly keyPrefix: string;
  readonly retry: Required<RetryOptions>;
  readonly fencing: boolean;
  readonly renew: boolean;
}

/** Resolved per-acquisition settings. */
export interface AcquireSettings {
  readonly resources: readonly string[];
  readonly ttl: number;
  readonly wait: number;
  readonly signal: AbortSignal | undefined;
  readonly renew: boolean;
  readonly onLost: AcquireOptions['onLost'];
}

/** Largest ttl a timer can represent. */
export const MAX_TTL = 2_147_483_647;

const REDLOCK_KEYS = [
  'ttl',
  'driftFactor',
  'driftMs',
  'nodeTimeout',
  'quorum',
  'keyPrefix',
  'retry',
  'fencing',
  'renew',
];
const ACQUIRE_KEYS = ['ttl', 'wait', 'signal', 'renew', 'onLost'];
const RETRY_KEYS = ['minDelay', 'maxDelay', 'factor'];

/** The default per-call deadline, learned from each node's round trips (see latency.ts). */
export { defaultNodeTimeout } from './latency.js';

/** Validates instance options for `nodeCount` nodes and fills in defaults. */
export function resolveSettings(options: unknown, nodeCount: number): Settings {
  const o = plainObject(options, 'options', REDLOCK_KEYS);
  const ttl = duration(o.ttl, 'options.ttl', 30_000, { positive: true, max: MAX_TTL });
  const quorum = o.quorum === undefined ? Math.floor(nodeCount / 2) + 1 : o.quorum;
  if (
    !Number.isInteger(quorum) ||
    (quorum as number) <= nodeCount / 2 ||
    (quorum as number) > nodeCount
  ) {
    throw new InvalidArgumentError(
      `options.quorum must be an integer greater than half the nodes and at most their number (${
        Math.floor(nodeCount / 2) + 1
      }..${nodeCount} for ${nodeCount} nodes), got ${show(o.quorum)}`,
    );
  }
  const driftFactor = o.driftFactor === undefined ? 0.01 : o.driftFactor;
  if (typeof driftFactor !== 'number' || !(driftFactor >= 0 && driftFactor < 1)) {
    throw new InvalidArgumentError(
      `options.driftFactor must be a number in [0, 1), got ${show(o.driftFactor)}`,
    );
  }
  const keyPrefix = o.keyPrefix === undefined ? 'quorumlock:' : o.keyPrefix;
  if (typeof keyPrefix !== 'string') {
    throw new InvalidArgumentError(`options.keyPrefix must be a string, got ${show(o.keyPrefix)}`);
  }
  return {
    ttl,
    driftFactor,
    driftMs: duration(o.driftMs, 'options.driftMs', 2, { max: MAX_TTL }),
    nodeTimeout:
      o.nodeTimeout === undefined
        ? undefined
        : duration(o.nodeTimeout, 'options.nodeTimeout', 0, { positive: true, max: MAX_TTL }),
    quorum: quorum as number,
    keyPrefix,
    retry: resolveRetry(o.retry),
    fencing: bool(o.fencing, 'options.fencing', true),
    renew: bool(o.renew, 'options.renew', false),
  };
}

/** Validates resources and per-acquisition options against instance settings. */
export function resolveAcquire(
  resources: unknown,
  options: unknown,
  settings: Settings,
  defaultWait: number,
): AcquireSettings {
  const list = resolveResources(resources);
  const o = plainObject(options, 'acquire options', ACQUIRE_KEYS);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError(
      `acquire options.signal must be an AbortSignal, got ${show(signal)}`,
    );
  }
  if (o.onLost !== undefined && typeof o.onLost !== 'function') {
    throw new InvalidArgumentError(
      `acquire options.onLost must be a function, got ${show(o.onLost)}`,
    );
  }
  let wait = defaultWait;
  if (o.wait !== undefined) {
    if (typeof o.wait !== 'number' || Number.isNaN(o.wait) || o.wait < 0) {
      throw new InvalidArgumentError(
        `acquire options.wait must be a number of ms ≥ 0 or Infinity, got ${show(o.wait)}`,
      );
    }
    wait = o.wait;
  }
  return {
    resources: list,
    ttl: duration(o.ttl, 'acquire options.ttl', settings.ttl, { positive: true, max: MAX_TTL }),
    wait,
    signal: signal as AbortSignal | undefined,
    renew: bool(o.renew, 'acquire options.renew', settings.renew),
    onLost: o.onLost as AcquireOptions['onLost'],
  };
}

/** A resource name or a non-empty list of distinct, non-empty names. */
export function resolveResources(resources: unknown): readonly string[] {
  const list = typeof resources === 'string' ? [resources] : resources;
  if (!Array.isArray(list) || list.length === 0) {
    throw new InvalidArgumentError(
      `resources must be a non-empty string or a non-empty array of strings, got ${show(resources)}`,
    );
  }
  const seen = new Set<string>();
  for (const r of list) {
    if (typeof r !== 'string' || r.length === 0) {
      throw new InvalidArgumentError(`every resource must be a non-empty string, got ${show(r)}`);
    }
    if (seen.has(r)) throw new InvalidArgumentError(`resource "${r}" is listed twice`);
    seen.add(r);
  }
  return [...list];
}

/** A validated ttl for `extend`. */
export function resolveTtl(ttl: unknown, fallback: number): number {
  return duration(ttl, 'ttl', fallback, { positive: true, max: MAX_TTL });
}

function resolveRetry(retry: unknown): Required<RetryOptions> {
  const o = plainObject(retry, 'options.retry', RETRY_KEYS);
  const minDelay = duration(o.minDelay, 'options.retry.minDelay', 10, { max: MAX_TTL });
  const maxDelay = duration(o.maxDelay, 'options.retry.maxDelay', Math.max(250, minDelay), {
    max: MAX_TTL,
  });
  const factor = o.factor === undefined ? 2 : o.factor;
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 1) {
    throw new InvalidArgumentError(
      `options.retry.factor must be a finite number ≥ 1, got ${show(o.factor)}`,
    );
  }
  if (maxDelay < minDelay) {
    throw new InvalidArgumentError(
      `options.retry.maxDelay (${maxDelay}) must be at least options.retry.minDelay (${minDelay})`,
    );
  }
  return { minDelay, maxDelay, factor };
}

function plainObject(
  value: unknown,
  name: string,
  allowed: readonly string[],
): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidArgumentError(`${name} must be an object, got ${show(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new InvalidArgumentError(
        `${name} has an unknown option "${key}"; known: ${allowed.join(', ')}`,
      );
    }
  }
  return value as Record<string, unknown>;
}

function duration(
  value: unknown,
  name: string,
  fallback: number,
  limits: { positive?: boolean; max: number },
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    (limits.positive && value === 0) ||
    value > limits.max
  ) {
    throw new InvalidArgumentError(
      `${name} must be a finite number of ms ${limits.positive ? '> 0' : '≥ 0'} and ≤ ${limits.max}, got ${show(value)}`,
    );
  }
  return value;
}

function bool(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean')
    throw new InvalidArgumentError(`${name} must be a boolean, got ${show(value)}`);
  return value;
}

/** A short rendering of a bad value for error messages. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null)
    return String(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return `a ${value.constructor?.name ?? 'object'}`;
}
