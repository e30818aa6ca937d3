/**
 * Observability through `node:diagnostics_channel`: subscribe to these
 * channels to get metrics and traces without a dependency. Nothing is built
 * or published while a channel has no subscribers.
 */
import diagnostics from 'node:diagnostics_channel';
import type { NodeOutcome } from './outcome.js';

/** Names of the channels quorumlock publishes on. */
export const channels = {
  /** Every acquire round: `{ resources, ok, reason?, durationMs, nodes, fence? }`. */
  acquire: 'quorumlock:acquire',
  /** Every extend round: `{ resources, ok, durationMs, nodes }`. */
  extend: 'quorumlock:extend',
  /** Every release: `{ resources, ok, durationMs, nodes, error? }`. */
  release: 'quorumlock:release',
  /** A held lock was lost: `{ resources, reason, error }`. */
  lost: 'quorumlock:lost',
  /**
   * An acquire began waiting for a lock another holder has (`waiting: true`,
   * after its first lost round) or stopped waiting (`false`: it got the lock,
   * gave up or was aborted): `{ resources, waiting }`.
   */
  wait: 'quorumlock:wait',
} as const;

/** The message of every round event. */
export interface RoundEvent {
  readonly resources: readonly string[];
  readonly ok: boolean;
  /** Why a failed round failed: `taken`, `quorum`, or `retry` (validity used up or fencing unconfirmed). */
  readonly reason?: 'taken' | 'quorum' | 'retry';
  readonly durationMs: number;
  readonly nodes: readonly NodeOutcome[];
  readonly fences?: Readonly<Record<string, number>>;
  readonly error?: unknown;
}

const acquire = diagnostics.channel(channels.acquire);
const extend = diagnostics.channel(channels.extend);
const release = diagnostics.channel(channels.release);
const lost = diagnostics.channel(channels.lost);
const wait = diagnostics.channel(channels.wait);
const byName = { acquire, extend, release, lost, wait };

/** Publishes the event built by `build` on `name`, building it only when someone listens. */
export function publish(name: keyof typeof byName, build: () => object): void {
  const channel = byName[name];
  if (channel.hasSubscribers) channel.publish(build());
}
