/**
 * The default per-call deadline (`nodeTimeout` when the caller sets none),
 * learned from each node's measured round trips so that the same defaults work
 * from one rack to several continents.
 *
 * Each node keeps a smoothed round-trip time and its mean deviation, the way
 * TCP estimates its retransmission timeout (RFC 6298). A node needs
 * `MULTIPLE × (srtt + 4 × rttvar)`, at least `FLOOR_MS`; a node never measured
 * needs `COLD_MS`. A round waits as long as its slowest node needs, so a
 * healthy node is never cut off and a minority that fails costs nothing
 * (rounds still decide at quorum); and never longer than a quarter of the ttl,
 * so a round that runs to its deadline still leaves most of the validity.
 * See docs/architecture.md, "Timeouts".
 */

/** Lowest deadline: absorbs event-loop stalls of a busy client talking to nearby nodes. */
export const FLOOR_MS = 50;
/** Deadline of a node before its first measured reply: every terrestrial round trip fits. */
export const COLD_MS = 1_000;
/** Safety multiple over the estimate (srtt + 4 × rttvar). */
export const MULTIPLE = 2;
/** The round's deadline is at most this fraction of the ttl. */
export const TTL_FRACTION = 1 / 4;

const ALPHA = 1 / 8;
const BETA = 1 / 4;

/** Round-trip estimate of one node: smoothed RTT and mean deviation (RFC 6298). */
export class RttEstimator {
  #srtt: number | undefined;
  #rttvar = 0;
  #samples = 0;

  /** Smoothed round trip, ms; undefined before the first sample. */
  get srtt(): number | undefined {
    return this.#srtt;
  }

  /** Mean deviation of the round trip, ms. */
  get rttvar(): number {
    return this.#rttvar;
  }

  /** How many round trips were recorded. */
  get samples(): number {
    return this.#samples;
  }

  /**
   * Records one round trip of `ms`. After the first, a sample counts at most as
   * twice the current deadline: a node that was paused for seconds does not
   * inflate the estimate for long, while a node that really got slower is
   * learned within a few calls (its late replies are recorded too).
   */
  record(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#samples++;
    if (this.#srtt === undefined) {
      this.#srtt = ms;
      this.#rttvar = ms / 2;
      return;
    }
    const sample = Math.min(ms, 2 * (this.timeout() ?? COLD_MS));
    this.#rttvar = (1 - BETA) * this.#rttvar + BETA * Math.abs(this.#srtt - sample);
    this.#srtt = (1 - ALPHA) * this.#srtt + ALPHA * sample;
  }

  /** The deadline this node needs, before the ttl bound; undefined before any sample. */
  timeout(): number | undefined {
    if (this.#srtt === undefined) return undefined;
    return Math.max(FLOOR_MS, MULTIPLE * (this.#srtt + 4 * this.#rttvar));
  }
}

/**
 * Longest deadline a round may have for `ttl`: ttl/4, so a round that runs to
 * its deadline still leaves three quarters of the ttl (less drift) as
 * validity; for tiny ttls, never below min(FLOOR_MS, ttl/2).
 */
export function timeoutBound(ttl: number): number {
  return Math.max(ttl * TTL_FRACTION, Math.min(FLOOR_MS, ttl / 2));
}

/**
 * The deadline of a round over nodes with these estimates (`undefined`: never
 * measured): what the slowest node needs, within [FLOOR_MS, timeoutBound(ttl)],
 * rounded up to whole ms.
 */
export function roundTimeout(
  estimates: readonly (RttEstimator | undefined)[],
  ttl: number,
): number {
  let needed = FLOOR_MS;
  for (const e of estimates) needed = Math.max(needed, e?.timeout() ?? COLD_MS);
  return Math.ceil(Math.min(needed, timeoutBound(ttl)));
}

const estimates = new WeakMap<object, RttEstimator>();

/** Records a round trip of `ms` to `node` (any object that stands for one node). */
export function recordRtt(node: object, ms: number): void {
  let e = estimates.get(node);
  if (!e) {
    e = new RttEstimator();
    estimates.set(node, e);
  }
  e.record(ms);
}

/** The round-trip estimate of `node`; undefined when nothing was recorded for it. */
export function rttOf(node: object): RttEstimator | undefined {
  return estimates.get(node);
}

/** The default deadline of each call of a round over `nodes` with this `ttl`. */
export function defaultNodeTimeout(nodes: readonly object[], ttl: number): number {
  return roundTimeout(
    nodes.map((n) => estimates.get(n)),
    ttl,
  );
}
