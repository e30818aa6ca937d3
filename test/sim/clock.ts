/**
 * Simulated time. The Scheduler owns the one true timeline (milliseconds from
 * the start of a run) and runs discrete events in order; every party (a
 * client process or a Redis node) reads time through its own SimClock, which
 * maps true time to what that party's clock shows: an offset, a rate error and
 * optional steps. The checker works on true time; the library only ever sees
 * its party's clock.
 *
 * A party can be paused (SIGSTOP, a GC pause): its events are held back and
 * run, in their original order, when it resumes. Clocks keep running while a
 * party is paused, as CLOCK_MONOTONIC and the wall clock do.
 */
import type { Clock } from '../../src/clock.js';

/** A scheduled event that can still be cancelled. */
export interface EventHandle {
  cancel(): void;
}

interface Event {
  at: number;
  seq: number;
  readonly owner: string;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Why `Scheduler.run` returned. */
export type RunEnd = 'idle' | 'until' | 'done' | 'maxEvents';

/** Lets every promise chain started by an event settle before the next event runs. */
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The true timeline and its event queue (a binary heap ordered by time, then insertion). */
export class Scheduler {
  #now = 0;
  #seq = 0;
  #heap: Event[] = [];
  readonly #paused = new Map<string, Event[]>();
  /** Events run so far. */
  events = 0;
  /** Called after every event once its promise chains have settled (the history sampler). */
  readonly afterEvent: Array<() => void> = [];

  /** Current true time, ms. */
  get now(): number {
    return this.#now;
  }

  /** Runs `fn` as `owner` at true time `at` (never in the past). */
  at(at: number, owner: string, fn: () => void): EventHandle {
    const ev: Event = {
      at: Math.max(at, this.#now),
      seq: this.#seq++,
      owner,
      fn,
      cancelled: false,
    };
    this.#push(ev);
    return {
      cancel: () => {
        ev.cancelled = true;
      },
    };
  }

  /** Runs `fn` as `owner` after `ms` of true time. */
  after(ms: number, owner: string, fn: () => void): EventHandle {
    return this.at(this.#now + Math.max(0, ms), owner, fn);
  }

  /** True while `owner` is paused. */
  isPaused(owner: string): boolean {
    return this.#paused.has(owner);
  }

  /** Holds back every event of `owner` until `resume(owner)`. */
  pause(owner: string): void {
    if (!this.#paused.has(owner)) this.#paused.set(owner, []);
  }

  /** Runs the held-back events of `owner` now, in their original order. */
  resume(owner: string): void {
    const held = this.#paused.get(owner);
    if (!held) return;
    this.#paused.delete(owner);
    for (const ev of held.sort((a, b) => a.seq - b.seq)) {
      ev.at = this.#now;
      ev.seq = this.#seq++;
      this.#push(ev);
    }
  }

  /** Drops every held-back event of `owner` (a paused process that crashed). */
  discardHeld(owner: string): void {
    const held = this.#paused.get(owner);
    if (held) held.length = 0;
  }

  /**
   * Runs events in true-time order until the queue is empty, true time would
   * pass `until`, `done()` holds, or `maxEvents` ran.
   */
  async run(
    opts: { until?: number; maxEvents?: number; done?: () => boolean } = {},
  ): Promise<RunEnd> {
    const until = opts.until ?? Number.POSITIVE_INFINITY;
    const maxEvents = opts.maxEvents ?? Number.POSITIVE_INFINITY;
    let ran = 0;
    for (;;) {
      if (opts.done?.()) return 'done';
      if (ran >= maxEvents) return 'maxEvents';
      const ev = this.#pop();
      if (!ev) return 'idle';
      if (ev.cancelled) continue;
      if (ev.at > until) {
        this.#push(ev);
        this.#now = until;
        return 'until';
      }
      this.#now = ev.at;
      const held = this.#paused.get(ev.owner);
      if (held) {
        held.push(ev);
        continue;
      }
      ran++;
      this.events++;
      ev.fn();
      await drain();
      for (const hook of this.afterEvent) hook();
    }
  }

  #push(ev: Event): void {
    const h = this.#heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): Event | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** How a party's clock starts. */
export interface ClockSpec {
  /** What the monotonic clock reads at true time 0, ms. Default 0. */
  readonly offset?: number;
  /** Clock ms per true ms; 1.001 runs 0.1% fast. Default 1. */
  readonly rate?: number;
  /** Wall clock minus monotonic clock at true time 0, ms. Default 1.7e12 (an epoch in 2023). */
  readonly wallOffset?: number;
}

/** One linear piece of a clock: from true time `t` the clock reads `r + (T − t)·rate`. */
interface Segment {
  readonly t: number;
  readonly r: number;
  readonly rate: number;
}

interface Timer {
  readonly target: number;
  readonly fn: () => void;
  event: EventHandle;
}

/** Added to converted timer times so a timer never fires a hair before its clock target. */
const TIMER_EPSILON = 1e-6;

/**
 * A party's clock. `now()` is its monotonic clock (rate error, and forward
 * steps only when a scenario breaks that assumption on purpose); `wallNow()`
 * is its wall clock, which follows the same oscillator and can also step
 * either way. Redis nodes expire keys on their wall clock. Timers fire when
 * the monotonic clock reaches their target, as the event of this party.
 */
export class SimClock implements Clock {
  readonly #sched: Scheduler;
  /** The party whose events the timers are. */
  readonly owner: string;
  readonly #segments: Segment[];
  /** Wall steps so far, in true-time order, with their cumulative sum. */
  readonly #wallSteps: Array<{ t: number; total: number }> = [];
  readonly #wallOffset: number;
  readonly #timers = new Set<Timer>();

  constructor(sched: Scheduler, owner: string, spec: ClockSpec = {}) {
    const rate = spec.rate ?? 1;
    if (!(rate > 0)) throw new RangeError(`clock rate must be > 0, got ${rate}`);
    this.#sched = sched;
    this.owner = owner;
    this.#segments = [{ t: sched.now, r: (spec.offset ?? 0) + sched.now * rate, rate }];
    this.#wallOffset = spec.wallOffset ?? 1.7e12;
  }

  now(): number {
    return this.readingAt(this.#sched.now);
  }

  wallNow(): number {
    return this.wallAt(this.#sched.now);
  }

  setTimer(fn: () => void, ms: number): () => void {
    const target = this.now() + (Number.isFinite(ms) ? Math.max(0, ms) : 0);
    const timer: Timer = { target, fn, event: { cancel() {} } };
    this.#arm(timer);
    this.#timers.add(timer);
    return () => {
      timer.event.cancel();
      this.#timers.delete(timer);
    };
  }

  /** What the monotonic clock read (or reads) at true time `t`. */
  readingAt(t: number): number {
    const s = this.#segmentAt(t);
    return s.r + (t - s.t) * s.rate;
  }

  /** What the wall clock read (or reads) at true time `t`. */
  wallAt(t: number): number {
    let steps = 0;
    for (const step of this.#wallSteps) {
      if (step.t > t) break;
      steps = step.total;
    }
    return this.readingAt(t) + this.#wallOffset + steps;
  }

  /**
   * The first true time at which the monotonic clock reads at least
   * `reading`: how a deadline the party computed maps onto the true timeline.
   * Uses the clock's whole history, so call it after a run for exact answers.
   */
  trueTimeOf(reading: number): number {
    const segs = this.#segments;
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i]!;
      if (reading <= s.r) return i === 0 ? s.t + (reading - s.r) / s.rate : s.t;
      const next = segs[i + 1];
      const end = next ? s.r + (next.t - s.t) * s.rate : Number.POSITIVE_INFINITY;
      if (reading <= end) return s.t + (reading - s.r) / s.rate;
    }
    throw new Error('unreachable: the last segment is unbounded');
  }

  /** Changes the rate from now on (the oscillator drifts differently). */
  setRate(rate: number): void {
    if (!(rate > 0)) throw new RangeError(`clock rate must be > 0, got ${rate}`);
    this.#split(0, rate);
  }

  /** Steps the monotonic (and with it the wall) clock forward by `ms` ≥ 0. */
  stepMonotonic(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`a monotonic clock only steps forward, got ${ms}`);
    this.#split(ms, this.#segments.at(-1)!.rate);
  }

  /** Steps the wall clock alone by `ms`, either way (NTP slew gone wrong, an operator). */
  stepWall(ms: number): void {
    const total = (this.#wallSteps.at(-1)?.total ?? 0) + ms;
    this.#wallSteps.push({ t: this.#sched.now, total });
  }

  #segmentAt(t: number): Segment {
    const segs = this.#segments;
    for (let i = segs.length - 1; i > 0; i--) if (segs[i]!.t <= t) return segs[i]!;
    return segs[0]!;
  }

  #split(step: number, rate: number): void {
    const t = this.#sched.now;
    const r = this.readingAt(t) + step;
    const last = this.#segments.at(-1)!;
    if (last.t === t) this.#segments[this.#segments.length - 1] = { t, r, rate };
    else this.#segments.push({ t, r, rate });
    // Pending timers are targets on this clock: re-place them on the true timeline.
    for (const timer of this.#timers) {
      timer.event.cancel();
      this.#arm(timer);
    }
  }

  #arm(timer: Timer): void {
    const at = Math.max(this.#sched.now, this.trueTimeOf(timer.target) + TIMER_EPSILON);
    timer.event = this.#sched.at(at, this.owner, () => {
      this.#timers.delete(timer);
      timer.fn();
    });
  }
}
