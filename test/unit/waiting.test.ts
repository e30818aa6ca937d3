import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { backoffDelay, LocalQueue, Wakeup } from '../../src/waiting.js';

/** A clock whose time moves only when the test says. */
class FakeClock implements Clock {
  #now = 0;
  #timers: Array<{ at: number; fn: () => void; live: boolean }> = [];

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + Math.max(0, ms), fn, live: true };
    this.#timers.push(timer);
    return () => {
      timer.live = false;
    };
  }

  /** Timers set and neither fired nor cancelled. */
  get pending(): number {
    return this.#timers.filter((t) => t.live).length;
  }

  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const due = this.#timers
        .filter((t) => t.live && t.at <= until)
        .sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#now = Math.max(this.#now, due.at);
      due.live = false;
      due.fn();
    }
    this.#now = until;
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Tracks whether a promise has settled, and how. */
function watch<T>(p: Promise<T>) {
  const state: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => {
      state.done = true;
      state.value = value;
    },
    (error: unknown) => {
      state.done = true;
      state.error = error;
    },
  );
  return state;
}

const retry = { minDelay: 10, maxDelay: 250, factor: 2 };

describe('backoffDelay', () => {
  it('grows its cap by factor per attempt from minDelay up to maxDelay', () => {
    const top = () => 1;
    expect([0, 1, 2, 3, 4, 5, 6, 50].map((a) => backoffDelay(a, retry, top))).toEqual([
      10, 20, 40, 80, 160, 250, 250, 250,
    ]);
  });

  it('stays at maxDelay for any number of attempts, even when factor^attempt overflows', () => {
    expect(backoffDelay(5_000, retry, () => 1)).toBe(250);
    expect(backoffDelay(5_000, retry, () => 0.5)).toBe(125);
  });

  it('is full jitter: uniform between 0 and the cap', () => {
    expect(backoffDelay(3, retry, () => 0)).toBe(0);
    expect(backoffDelay(3, retry, () => 0.25)).toBe(20);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const cap = Math.min(250, 10 * 2 ** attempt);
          const d = backoffDelay(attempt, retry, () => r);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThan(cap + 1e-9);
          expect(d).toBeCloseTo(r * cap, 9);
        },
      ),
    );
  });

  it('uses Math.random by default, spreading delays over the whole range', () => {
    const samples = Array.from({ length: 2000 }, () => backoffDelay(10, retry));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...samples)).toBeLessThanOrEqual(250);
    // With 2000 uniform draws, each quarter of the range is hit hundreds of times.
    for (let q = 0; q < 4; q++) {
      const inQuarter = samples.filter((s) => s >= q * 62.5 && s < (q + 1) * 62.5).length;
      expect(inQuarter).toBeGreaterThan(300);
    }
  });

  it('keeps a constant cap with factor 1', () => {
    const flat = { minDelay: 30, maxDelay: 250, factor: 1 };
    expect([0, 1, 10, 1000].map((a) => backoffDelay(a, flat, () => 1))).toEqual([30, 30, 30, 30]);
  });
});

describe('Wakeup', () => {
  it('returns at once from a sleep when notified before it started', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock);
    wake.notify();
    const s = watch(wake.sleep(clock, 10_000));
    await flush();
    expect(s.done).toBe(true);
    expect(clock.now()).toBe(0);
  });

  it('ends a sleep early when notified during it', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock);
    const s = watch(wake.sleep(clock, 10_000));
    clock.advance(100);
    await flush();
    expect(s.done).toBe(false);
    wake.notify();
    await flush();
    expect(s.done).toBe(true);
    expect(s.error).toBeUndefined();
    expect(clock.pending).toBe(0);
  });

  it('sleeps the full time without a notice', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock);
    const s = watch(wake.sleep(clock, 500));
    clock.advance(499);
    await flush();
    expect(s.done).toBe(false);
    clock.advance(1);
    await flush();
    expect(s.done).toBe(true);
  });

  it('spends one notice on one sleep: the next sleep waits again', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock);
    wake.notify();
    wake.notify();
    await wake.sleep(clock, 1000);
    const s = watch(wake.sleep(clock, 1000));
    await flush();
    expect(s.done).toBe(false);
    clock.advance(1000);
    await flush();
    expect(s.done).toBe(true);
  });

  it('rejects with the signal reason when the signal aborts during a sleep', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock);
    const controller = new AbortController();
    const s = watch(wake.sleep(clock, 10_000, controller.signal));
    await flush();
    const reason = new Error('stop waiting');
    controller.abort(reason);
    await flush();
    expect(s.done).toBe(true);
    expect(s.error).toBe(reason);
    expect(clock.pending).toBe(0);
  });

  it('wakes once a quorum of nodes announced the same release, not on the first notice', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock, 3, 25);
    const s = watch(wake.sleep(clock, 10_000));
    wake.notify('v1');
    wake.notify('v1');
    await flush();
    expect(s.done).toBe(false);
    wake.notify('v1');
    await flush();
    expect(s.done).toBe(true);
  });

  it('wakes a grace period after the first notice when too few nodes announce it', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock, 3, 25);
    const s = watch(wake.sleep(clock, 10_000));
    wake.notify('v1');
    clock.advance(24);
    await flush();
    expect(s.done).toBe(false);
    clock.advance(1);
    await flush();
    expect(s.done).toBe(true);
  });

  it('wakes again when the rest of a release is announced after an early wake', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock, 3, 25);
    wake.notify('v1');
    clock.advance(25);
    await wake.sleep(clock, 10_000);
    // The early round lost to nodes that had not released yet; their notices wake it again.
    const s = watch(wake.sleep(clock, 10_000));
    wake.notify('v1');
    await flush();
    expect(s.done).toBe(false);
    wake.notify('v1');
    await flush();
    expect(s.done).toBe(true);
    // Repeats of a release already counted do not wake anyone.
    const t = watch(wake.sleep(clock, 10_000));
    wake.notify('v1');
    await flush();
    expect(t.done).toBe(false);
    wake.dispose();
  });

  it('rejects at once when the signal was aborted before the sleep', async () => {
    const clock = new FakeClock();
    const wake = new Wakeup(clock);
    const reason = new Error('already aborted');
    const s = watch(wake.sleep(clock, 10_000, AbortSignal.abort(reason)));
    await flush();
    expect(s.done).toBe(true);
    expect(s.error).toBe(reason);
  });
});

describe('LocalQueue', () => {
  it('gives turns on one key in arrival order, one at a time', async () => {
    const queue = new LocalQueue();
    const order: string[] = [];
    const leaves = new Map<string, () => void>();
    const entrants = ['a', 'b', 'c', 'd'].map((name) =>
      queue.enter('k').then((leave) => {
        order.push(name);
        leaves.set(name, leave);
      }),
    );
    await flush();
    expect(order).toEqual(['a']);
    // Leaving in turn order lets exactly the next one in, each time.
    for (const [i, name] of ['a', 'b', 'c'].entries()) {
      leaves.get(name)!();
      await flush();
      expect(order).toEqual(['a', 'b', 'c', 'd'].slice(0, i + 2));
    }
    leaves.get('d')!();
    await Promise.all(entrants);
    expect(queue.busy('k')).toBe(false);
  });

  it('keeps different keys independent', async () => {
    const queue = new LocalQueue();
    const leaveA = await queue.enter('a');
    const b = watch(queue.enter('b'));
    await flush();
    expect(b.done).toBe(true);
    leaveA();
  });

  it('is busy while someone holds or waits for a turn', async () => {
    const queue = new LocalQueue();
    expect(queue.busy('k')).toBe(false);
    const leave1 = await queue.enter('k');
    expect(queue.busy('k')).toBe(true);
    const second = queue.enter('k');
    leave1();
    await flush();
    expect(queue.busy('k')).toBe(true);
    (await second)();
    expect(queue.busy('k')).toBe(false);
  });

  it('lets leave be called twice without letting two entrants in', async () => {
    const queue = new LocalQueue();
    const leave1 = await queue.enter('k');
    const second = watch(queue.enter('k'));
    const third = watch(queue.enter('k'));
    leave1();
    leave1();
    await flush();
    expect(second.done).toBe(true);
    expect(third.done).toBe(false);
    (second.value as () => void)();
    await flush();
    expect(third.done).toBe(true);
  });

  it('rejects a waiting entrant with the signal reason when it aborts, and lets the rest keep their order', async () => {
    const queue = new LocalQueue();
    const leave1 = await queue.enter('k');
    const controller = new AbortController();
    const second = watch(queue.enter('k', controller.signal));
    const third = watch(queue.enter('k'));
    const reason = new Error('gave up');
    controller.abort(reason);
    await flush();
    expect(second.error).toBe(reason);
    // The third still waits for the first, who holds the turn.
    expect(third.done).toBe(false);
    leave1();
    await flush();
    expect(third.done).toBe(true);
  });

  it('rejects at once with an already aborted signal, without taking a turn', async () => {
    const queue = new LocalQueue();
    const reason = new Error('too late');
    await expect(queue.enter('k', AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(queue.busy('k')).toBe(false);
    const next = watch(queue.enter('k'));
    await flush();
    expect(next.done).toBe(true);
  });

  it('still makes a later entrant wait for the holder when the last waiter gave up', async () => {
    const queue = new LocalQueue();
    const leave1 = await queue.enter('k');
    const controller = new AbortController();
    const second = watch(queue.enter('k', controller.signal));
    controller.abort(new Error('gave up'));
    await flush();
    expect(second.done).toBe(true);
    // The first entrant still holds its turn: the queue is busy and a newcomer waits.
    expect(queue.busy('k')).toBe(true);
    const third = watch(queue.enter('k'));
    await flush();
    expect(third.done).toBe(false);
    leave1();
    await flush();
    expect(third.done).toBe(true);
  });
});
