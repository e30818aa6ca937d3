/**
 * The history of a run and the checker of the safety and liveness properties,
 * on the true timeline. The same checker judges simulated runs and runs
 * against real redis-servers (where true time is the machine's clock).
 *
 * I1  Mutual exclusion: no two acquisitions of a resource are held at the same
 *     true time. An acquisition is held from acquire-ok until the earlier of
 *     its release call and the validity deadline the client believed in at
 *     that moment (converted to true time). A moment when a client acted on
 *     the lock (a write after checking `remaining() > 0`) also counts as held:
 *     a client that stalled between the check and the write acts late.
 * I2  Fencing order: if acquisition X completed before acquisition Y began,
 *     Y's token for every shared resource is greater than X's.
 * I3  The fenced store never accepts a stale token: every accepted write
 *     carries a token greater than every earlier accepted write's, or equal
 *     to it and from the same acquisition.
 * I4  Liveness: an acquisition marked uncontended with a healthy majority
 *     succeeds within its budget.
 * I5  Cleanup: once a failed round has settled, no key of it is left on a node
 *     that stayed reachable from its client.
 * I6  Queue: a live waiter (its process keeps running, so it keeps refreshing
 *     its place) is not starved. Once it is queued (`after` ms after its call
 *     began) no acquisition that began later gets the resource before it
 *     (first come, first served), and the resource never stays free longer
 *     than `gap` ms while it waits (a hand-over: the release reaching the
 *     nodes, the turn notice, the claim round; or a holder's key running out
 *     and the waiter's timer). Together: a waiter is served within the holds
 *     of those queued ahead of it plus one `gap` per hand-over.
 */

/** One acquisition attempt (an `acquire`/`tryAcquire`/`using` call), in true ms. */
export interface Acquisition {
  readonly id: string;
  readonly client: string;
  readonly resources: readonly string[];
  /** When the call was made. */
  readonly startedAt: number;
  /** When it returned a lock, or null if it never did. */
  okAt: number | null;
  /** When the call ended either way, or null if it never ended. */
  endedAt: number | null;
  /** Token per resource; empty without fencing or without success. */
  fences: Record<string, number>;
  /**
   * What the client believed about validity: from `at` on, the lock is valid
   * until `until`. The first entry is at okAt; later ones come from extends.
   */
  deadlines: Array<{ at: number; until: number }>;
  /** When the client called release, or null. */
  releasedAt: number | null;
  /** Moments the client acted on the lock (store writes), per resource. */
  uses: Array<{ at: number; resource: string }>;
}

/** A write offered to the fenced store. */
export interface StoreWrite {
  readonly at: number;
  readonly resource: string;
  readonly token: number;
  readonly acquisition: string;
  readonly accepted: boolean;
}

/** An I5 observation: what a node held of an acquisition's failed rounds after they settled. */
export interface CleanupProbe {
  readonly at: number;
  readonly node: string;
  readonly acquisition: string;
  /** Whether the node stayed reachable from the client over the whole acquisition and settling time. */
  readonly reachable: boolean;
  /** Values of failed rounds still present on the node. */
  readonly leftovers: readonly string[];
}

/** An I4 obligation: this acquisition had no contention and a healthy majority. */
export interface LivenessBudget {
  readonly acquisition: string;
  /** Longest acceptable time from the call to acquire-ok, ms. */
  readonly budget: number;
}

/** An I6 obligation: this acquisition waits in the nodes' queue and its process stays live. */
export interface FairnessBound {
  readonly acquisition: string;
  /** By this many ms after its call began, the waiter is queued on a quorum. */
  readonly after: number;
  /** Longest the resource may stay free while the waiter waits, ms. */
  readonly gap: number;
}

/** Everything a run recorded. */
export interface History {
  readonly acquisitions: Acquisition[];
  readonly writes: StoreWrite[];
  readonly probes: CleanupProbe[];
  readonly liveness: LivenessBudget[];
  readonly fairness: FairnessBound[];
}

/** The invariants, as named in the issue. */
export type Invariant = 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'I6';

/** One violated invariant, with enough detail to understand it. */
export interface Violation {
  readonly invariant: Invariant;
  readonly message: string;
}

/** An empty history to record into. */
export function emptyHistory(): History {
  return { acquisitions: [], writes: [], probes: [], liveness: [], fairness: [] };
}

/** A half-open true-time interval [from, to); `from === to` is a single instant. */
export interface Hold {
  readonly acquisition: string;
  readonly from: number;
  readonly to: number;
  /** True for an instant of use outside the believed validity. */
  readonly instant: boolean;
}

/** The true-time intervals during which `a` was held on `resource` (I1's definition). */
export function holdsOf(a: Acquisition, resource: string): Hold[] {
  if (a.okAt === null || !a.resources.includes(resource)) return [];
  const end = a.releasedAt ?? Number.POSITIVE_INFINITY;
  const out: Hold[] = [];
  const ds = [...a.deadlines].sort((x, y) => x.at - y.at);
  ds.forEach((d, i) => {
    const from = Math.max(d.at, a.okAt!);
    const to = Math.min(ds[i + 1]?.at ?? Number.POSITIVE_INFINITY, d.until, end);
    if (to > from) out.push({ acquisition: a.id, from, to, instant: false });
  });
  for (const u of a.uses) {
    if (u.resource !== resource) continue;
    if (out.some((h) => !h.instant && h.from <= u.at && u.at < h.to)) continue;
    out.push({ acquisition: a.id, from: u.at, to: u.at, instant: true });
  }
  return out;
}

function overlap(a: Hold, b: Hold): boolean {
  if (a.instant && b.instant) return a.from === b.from;
  if (a.instant) return b.from <= a.from && a.from < b.to;
  if (b.instant) return a.from <= b.from && b.from < a.to;
  return a.from < b.to && b.from < a.to;
}

/** I1: holds of different acquisitions of one resource never overlap. */
export function checkMutualExclusion(h: History): Violation[] {
  const out: Violation[] = [];
  const resources = new Set(h.acquisitions.flatMap((a) => a.resources));
  for (const r of resources) {
    const holds = h.acquisitions.flatMap((a) => holdsOf(a, r)).sort((x, y) => x.from - y.from);
    // Sweep: holds sorted by start; compare each with the ones still open.
    const open: Hold[] = [];
    for (const hold of holds) {
      for (let i = open.length - 1; i >= 0; i--) {
        const o = open[i]!;
        if (o.to < hold.from || (!o.instant && o.to === hold.from)) open.splice(i, 1);
      }
      for (const o of open) {
        if (o.acquisition !== hold.acquisition && overlap(o, hold)) {
          out.push({
            invariant: 'I1',
            message:
              `"${r}" held by ${o.acquisition} [${fmt(o.from)}, ${fmt(o.to)}) and by ` +
              `${hold.acquisition} [${fmt(hold.from)}, ${fmt(hold.to)}) at the same time`,
          });
        }
      }
      open.push(hold);
    }
  }
  return out;
}

/** I2: acquisitions that completed before another began have smaller tokens. */
export function checkFenceOrder(h: History): Violation[] {
  const out: Violation[] = [];
  const done = h.acquisitions.filter((a) => a.okAt !== null && Object.keys(a.fences).length > 0);
  const resources = new Set(done.flatMap((a) => Object.keys(a.fences)));
  for (const r of resources) {
    const withR = done.filter((a) => a.fences[r] !== undefined);
    const byOk = [...withR].sort((x, y) => x.okAt! - y.okAt!);
    // For each Y, compare with the largest token among acquisitions that completed before Y began.
    let best: Acquisition | undefined;
    let k = 0;
    for (const y of [...withR].sort((x, z) => x.startedAt - z.startedAt)) {
      while (k < byOk.length && byOk[k]!.okAt! < y.startedAt) {
        const x = byOk[k++]!;
        if (!best || x.fences[r]! > best.fences[r]!) best = x;
      }
      if (best && y.fences[r]! <= best.fences[r]!) {
        out.push({
          invariant: 'I2',
          message:
            `"${r}": ${y.id} began at ${fmt(y.startedAt)} after ${best.id} completed at ` +
            `${fmt(best.okAt!)}, but got token ${y.fences[r]} ≤ ${best.fences[r]}`,
        });
      }
    }
  }
  return out;
}

/** I3: accepted writes never go back in token order, and equal tokens come from one acquisition. */
export function checkFencedStore(h: History): Violation[] {
  const out: Violation[] = [];
  const top = new Map<string, { token: number; acquisition: string }>();
  for (const w of [...h.writes].sort((a, b) => a.at - b.at)) {
    if (!w.accepted) continue;
    const t = top.get(w.resource);
    if (t && (w.token < t.token || (w.token === t.token && w.acquisition !== t.acquisition))) {
      out.push({
        invariant: 'I3',
        message:
          `"${w.resource}": the store accepted token ${w.token} from ${w.acquisition} at ${fmt(w.at)} ` +
          `after token ${t.token} from ${t.acquisition}`,
      });
      continue;
    }
    top.set(w.resource, { token: w.token, acquisition: w.acquisition });
  }
  return out;
}

/** I4: uncontended acquisitions with a healthy majority succeed within budget. */
export function checkLiveness(h: History): Violation[] {
  const out: Violation[] = [];
  const byId = new Map(h.acquisitions.map((a) => [a.id, a]));
  for (const l of h.liveness) {
    const a = byId.get(l.acquisition);
    if (!a) {
      out.push({
        invariant: 'I4',
        message: `${l.acquisition} has a budget but was never recorded`,
      });
      continue;
    }
    if (a.okAt === null) {
      const how = a.endedAt === null ? 'never returned' : `failed at ${fmt(a.endedAt)}`;
      out.push({
        invariant: 'I4',
        message: `${a.id} began at ${fmt(a.startedAt)} with a healthy majority and ${how}`,
      });
    } else if (a.okAt - a.startedAt > l.budget) {
      out.push({
        invariant: 'I4',
        message: `${a.id} took ${fmt(a.okAt - a.startedAt)} ms to acquire, budget ${l.budget} ms`,
      });
    }
  }
  return out;
}

/** I5: no key of a settled failed round on a node that stayed reachable. */
export function checkCleanup(h: History): Violation[] {
  return h.probes
    .filter((p) => p.reachable && p.leftovers.length > 0)
    .map((p) => ({
      invariant: 'I5' as const,
      message: `${p.node} still holds ${p.leftovers.join(', ')} of ${p.acquisition} at ${fmt(p.at)}`,
    }));
}

/**
 * I6: a live queued waiter is overtaken by nobody who came later, and the
 * resource never stays free longer than the bound while it waits.
 */
export function checkQueue(h: History): Violation[] {
  const out: Violation[] = [];
  const byId = new Map(h.acquisitions.map((a) => [a.id, a]));
  for (const f of h.fairness) {
    const w = byId.get(f.acquisition);
    if (!w) {
      out.push({ invariant: 'I6', message: `${f.acquisition} has a bound but was never recorded` });
      continue;
    }
    const queuedAt = w.startedAt + f.after;
    const until = w.okAt ?? w.endedAt;
    if (until === null) {
      out.push({
        invariant: 'I6',
        message: `${w.id} began waiting at ${fmt(w.startedAt)} and never returned`,
      });
      continue;
    }
    if (until <= queuedAt) continue;
    for (const r of w.resources) {
      const others = h.acquisitions.filter(
        (x) => x.id !== w.id && x.okAt !== null && x.resources.includes(r),
      );
      // First come, first served: nobody who began after W was queued gets in before W.
      for (const x of others) {
        if (x.startedAt > queuedAt && x.okAt! < until) {
          out.push({
            invariant: 'I6',
            message:
              `"${r}": ${x.id} began at ${fmt(x.startedAt)}, after ${w.id} was queued (by ` +
              `${fmt(queuedAt)}), and got it at ${fmt(x.okAt!)} before ${w.id} (${w.okAt === null ? `gave up at ${fmt(until)}` : `served at ${fmt(until)}`})`,
          });
        }
      }
      // No gap: the union of the others' holds covers [queuedAt, until] but for gaps ≤ f.gap.
      const holds = others
        .flatMap((x) => holdsOf(x, r))
        .filter((hd) => !hd.instant && hd.to > queuedAt && hd.from < until)
        .sort((a, b) => a.from - b.from);
      let free = queuedAt;
      const gapAt = (from: number, to: number) => {
        if (to - from > f.gap) {
          out.push({
            invariant: 'I6',
            message:
              `"${r}" stayed free from ${fmt(from)} to ${fmt(to)} (${fmt(to - from)} ms, bound ` +
              `${f.gap} ms) while ${w.id} waited (queued by ${fmt(queuedAt)})`,
          });
        }
      };
      for (const hd of holds) {
        if (hd.from > free) gapAt(free, hd.from);
        free = Math.max(free, hd.to);
      }
      if (until > free) gapAt(free, until);
    }
  }
  return out;
}

/** Every violation of I1–I6 in `h`. */
export function check(h: History): Violation[] {
  return [
    ...checkMutualExclusion(h),
    ...checkFenceOrder(h),
    ...checkFencedStore(h),
    ...checkLiveness(h),
    ...checkCleanup(h),
    ...checkQueue(h),
  ];
}

/** Violations counted by invariant. */
export function countByInvariant(vs: readonly Violation[]): Record<Invariant, number> {
  const c: Record<Invariant, number> = { I1: 0, I2: 0, I3: 0, I4: 0, I5: 0, I6: 0 };
  for (const v of vs) c[v.invariant]++;
  return c;
}

/**
 * The guarded resource of the fencing docs: it accepts a write only with a
 * token at least the highest it has accepted. Records every offer in `writes`.
 */
export class FencedStore {
  readonly #highest = new Map<string, number>();
  constructor(readonly writes: StoreWrite[]) {}

  /** Offers a write; true when accepted. */
  write(at: number, resource: string, token: number, acquisition: string): boolean {
    const highest = this.#highest.get(resource) ?? Number.NEGATIVE_INFINITY;
    const accepted = token >= highest;
    if (accepted) this.#highest.set(resource, token);
    this.writes.push({ at, resource, token, acquisition, accepted });
    return accepted;
  }
}

function fmt(t: number): string {
  return Number.isFinite(t) ? t.toFixed(3) : String(t);
}
