/**
 * The demo's checker: from the recorded lock holds (when each holder got the
 * lock, the last validity deadline it was told, when its command ended), count
 * holders whose validity windows overlap and check that fencing tokens grow
 * with acquisition order. Pure, so it is tested on made-up histories.
 */

/** One recorded lock hold. Times are epoch ms from the holder's own reports. */
export interface Hold {
  readonly holder: string;
  readonly fence: number;
  /** When the holder learnt it had the lock. */
  readonly acquiredAt: number;
  /** The last validity deadline the holder reported (at acquisition or after a renewal). */
  readonly validUntil: number;
  /** When the holder's command ended and it stopped relying on the lock; undefined if never seen. */
  readonly endedAt: number | undefined;
}

/** Two holds whose windows overlap. */
export interface Overlap {
  readonly first: Hold;
  readonly second: Hold;
  /** How long both held, in ms. */
  readonly ms: number;
}

/** What the checker found. */
export interface HistoryVerdict {
  readonly holds: number;
  readonly overlaps: readonly Overlap[];
  /** Pairs of successive holds (by acquisition) whose tokens did not strictly increase. */
  readonly fenceRegressions: readonly [Hold, Hold][];
}

/**
 * The window in which a holder may rely on its lock: from acquisition until
 * its command ended or its last known validity ran out, whichever is first.
 * A holder frozen past its validity is outside its window when it wakes:
 * that is where fencing, not the lock, protects the resource.
 */
export function windowEnd(hold: Hold): number {
  return Math.min(hold.endedAt ?? Number.POSITIVE_INFINITY, hold.validUntil);
}

/** Checks a history of holds of one lock. */
export function checkHistory(holds: readonly Hold[]): HistoryVerdict {
  const sorted = [...holds].sort((a, b) => a.acquiredAt - b.acquiredAt);
  const overlaps: Overlap[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i]!;
    for (let j = i + 1; j < sorted.length; j++) {
      const b = sorted[j]!;
      if (b.acquiredAt >= windowEnd(a)) continue;
      const ms = Math.min(windowEnd(a), windowEnd(b)) - b.acquiredAt;
      if (ms > 0) overlaps.push({ first: a, second: b, ms });
    }
  }
  const fenceRegressions: [Hold, Hold][] = [];
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.fence <= sorted[i - 1]!.fence)
      fenceRegressions.push([sorted[i - 1]!, sorted[i]!]);
  }
  return { holds: holds.length, overlaps, fenceRegressions };
}
