/**
 * The quorum's verdict on a resource from every node's view of it, as
 * `quorumlock status` reports it. Pure: it only counts.
 */

import type { NodeState } from '../redis/redlock.js';

/** One node's view of a resource, as `redlock.inspect(resource)` returns it. */
export type NodeView = NodeState;

/** What the quorum says about a resource. */
export type VerdictState =
  /** One value is held on a quorum: that holder has the lock. */
  | 'held'
  /** A quorum of nodes has no key: an acquire could succeed now. */
  | 'free'
  /** Neither: keys of no quorum holder block a quorum (leftovers of failed rounds, a split). */
  | 'blocked'
  /** Fewer than a quorum of nodes answered. */
  | 'no-quorum';

/** The verdict, with the numbers behind it. */
export interface Verdict {
  readonly state: VerdictState;
  readonly quorum: number;
  readonly reachable: number;
  /** The holder's value, for `held`. */
  readonly holder?: string;
  /** Nodes holding `holder`'s value, for `held`. */
  readonly holdingNodes?: number;
  /**
   * For `held`: ms until fewer than a quorum of nodes hold it (if not renewed).
   * For `blocked`: ms until a quorum of nodes is free.
   */
  readonly expiresInMs?: number;
  /** The highest fence counter seen; the next holder's token is above it. */
  readonly maxFence: number | null;
}

/** Counts the nodes' views into the quorum's verdict. */
export function judge(views: readonly NodeView[], quorum: number): Verdict {
  const answered = views.filter((v) => v.error === undefined);
  const fences = answered.map((v) => v.fence).filter((f): f is number => f !== null);
  const maxFence = fences.length > 0 ? Math.max(...fences) : null;
  const base = { quorum, reachable: answered.length, maxFence };
  if (answered.length < quorum) return { ...base, state: 'no-quorum' };

  const byValue = new Map<string, number[]>();
  for (const v of answered) {
    if (v.value !== null) byValue.set(v.value, [...(byValue.get(v.value) ?? []), ttlOf(v)]);
  }
  for (const [value, ttls] of byValue) {
    if (ttls.length >= quorum) {
      return {
        ...base,
        state: 'held',
        holder: value,
        holdingNodes: ttls.length,
        expiresInMs: kthLargest(ttls, quorum),
      };
    }
  }
  const free = answered.filter((v) => v.value === null).length;
  if (free >= quorum) return { ...base, state: 'free' };
  // A quorum frees up once enough held keys expire: the (quorum − free)-th shortest ttl.
  // Keys without expiry (pttl −1) never free a node by themselves.
  const ttls = answered
    .filter((v) => v.value !== null && ttlOf(v) >= 0)
    .map(ttlOf)
    .sort((a, b) => a - b);
  const needed = quorum - free;
  const expiresInMs = ttls[needed - 1];
  return expiresInMs === undefined
    ? { ...base, state: 'blocked' }
    : { ...base, state: 'blocked', expiresInMs };
}

/** A held key's remaining ttl in ms; −1 when it has no expiry. */
function ttlOf(view: NodeView): number {
  return view.pttl ?? -1;
}

/** The k-th largest number (k from 1): how long at least k of them stay above zero. */
function kthLargest(values: readonly number[], k: number): number {
  return [...values].sort((a, b) => b - a)[k - 1]!;
}
