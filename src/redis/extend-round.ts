/**
 * The rule for success of an extend round, the same for locks and permits:
 * the new validity runs from the round's own start; a round that failed
 * leaves the old validity as it was and says whether the holder is gone
 * (too many nodes answered that it no longer holds) or the nodes could not
 * be reached. Publishes the round on the `extend` diagnostics channel.
 */
import type { Clock } from '../clock.js';
import { publish } from '../diagnostics.js';
import { LockLostError, QuorumError } from '../errors.js';
import type { ExtendResult } from '../lock.js';
import type { Settings } from '../options.js';
import { isInfrastructureFailure, type Round } from './quorum.js';

/** Why a round whose validity ran out before it ended failed. */
export function expiredReason(ttl: number): string {
  return `the round took longer than the validity of a ${ttl} ms ttl; raise ttl or nodeTimeout, or check node latency`;
}

/**
 * The ExtendResult of `round`, an extend to `ttl` ms of `resources`; `event`
 * adds fields to the diagnostics event, `gone` says what was lost.
 */
export function extendOutcome(
  round: Round<unknown>,
  ttl: number,
  settings: Settings,
  clock: Clock,
  resources: readonly string[],
  gone: string,
  event: object = {},
): ExtendResult {
  const { quorum, driftFactor, driftMs } = settings;
  const deadline = round.startedAt + ttl - (ttl * driftFactor + driftMs);
  const ok = round.ok && deadline > clock.now();
  publish('extend', () => ({
    resources,
    ...event,
    ok,
    durationMs: clock.now() - round.startedAt,
    nodes: round.outcomes,
  }));
  if (ok) return { deadline, gone: false, outcomes: round.outcomes };
  const infra = isInfrastructureFailure(round.outcomes, quorum);
  return {
    deadline: undefined,
    gone: !infra && !round.ok,
    outcomes: round.outcomes,
    error: round.ok
      ? new QuorumError('extend', quorum, round.outcomes, expiredReason(ttl))
      : infra
        ? new QuorumError('extend', quorum, round.outcomes)
        : new LockLostError(resources, gone),
  };
}
