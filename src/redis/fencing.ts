/**
 * Fencing token rules. Phase 1 (in the acquire script) advances each
 * resource's counter on every node that grants the lock; the token is the
 * largest counter among those nodes. When they disagree, phase 2 raises the
 * counters on those nodes to the token, so that a majority holds a counter
 * ≥ the token before the acquisition completes (docs/safety.md has the proof).
 */

/** Tokens chosen from the fence counters returned by the nodes that said yes. */
export interface TokenChoice {
  /** One token per resource, in resource order. */
  readonly tokens: readonly number[];
  /** True when the nodes returned different counters, so phase 2 must run. */
  readonly needsSync: boolean;
}

/** Picks each resource's token as the maximum counter over the granting nodes. */
export function chooseTokens(replies: Iterable<readonly number[]>): TokenChoice {
  let tokens: number[] | undefined;
  let needsSync = false;
  for (const fences of replies) {
    if (!tokens) {
      tokens = [...fences];
      continue;
    }
    fences.forEach((f, i) => {
      const t = tokens![i]!;
      if (f !== t) needsSync = true;
      if (f > t) tokens![i] = f;
    });
  }
  for (const t of tokens ?? []) {
    if (!Number.isSafeInteger(t) || t < 0)
      throw new RangeError(`fence counter ${t} is not a safe integer`);
  }
  return { tokens: tokens ?? [], needsSync };
}
