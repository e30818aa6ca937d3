import { describe, expect, it } from 'vitest';
import { sleep } from '../../src/clock.js';
import { Scheduler, SimClock } from './clock.js';

describe('Scheduler', () => {
  it('runs events in true-time order, ties in the order they were scheduled', async () => {
    const s = new Scheduler();
    const seen: string[] = [];
    s.at(5, 'x', () => seen.push('b'));
    s.at(1, 'x', () => seen.push('a'));
    s.at(5, 'y', () => seen.push('c'));
    expect(await s.run()).toBe('idle');
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(s.now).toBe(5);
  });

  it('lets promise chains started by an event finish before the next event', async () => {
    const s = new Scheduler();
    const seen: string[] = [];
    s.at(1, 'x', () => {
      void Promise.resolve()
        .then(() => Promise.resolve())
        .then(() => seen.push('chain'));
    });
    s.at(1, 'x', () => seen.push('next'));
    await s.run();
    expect(seen).toEqual(['chain', 'next']);
  });

  it('never runs a cancelled event and stops at `until`', async () => {
    const s = new Scheduler();
    const seen: number[] = [];
    s.at(1, 'x', () => seen.push(1)).cancel();
    s.at(2, 'x', () => seen.push(2));
    s.at(10, 'x', () => seen.push(10));
    expect(await s.run({ until: 5 })).toBe('until');
    expect(seen).toEqual([2]);
    expect(s.now).toBe(5);
    await s.run();
    expect(seen).toEqual([2, 10]);
  });

  it('holds back a paused party and runs its events in order on resume', async () => {
    const s = new Scheduler();
    const seen: Array<[string, number]> = [];
    s.pause('p');
    s.at(1, 'p', () => seen.push(['p1', s.now]));
    s.at(2, 'q', () => seen.push(['q', s.now]));
    s.at(3, 'p', () => seen.push(['p2', s.now]));
    s.at(50, 'world', () => s.resume('p'));
    await s.run();
    expect(seen).toEqual([
      ['q', 2],
      ['p1', 50],
      ['p2', 50],
    ]);
  });

  it('drops what a paused party held when it is discarded (a crash while frozen)', async () => {
    const s = new Scheduler();
    const seen: number[] = [];
    s.pause('p');
    s.at(1, 'p', () => seen.push(1));
    s.at(2, 'world', () => {
      s.discardHeld('p');
      s.resume('p');
    });
    await s.run();
    expect(seen).toEqual([]);
  });
});

describe('SimClock', () => {
  it('reads offset + rate × true time, and maps readings back to true time', () => {
    const s = new Scheduler();
    const c = new SimClock(s, 'c', { offset: 1000, rate: 1.01 });
    expect(c.readingAt(100)).toBeCloseTo(1101, 9);
    expect(c.trueTimeOf(1101)).toBeCloseTo(100, 9);
    expect(c.wallAt(0)).toBe(1.7e12 + 1000);
  });

  it('fires timers when its own clock reaches the target, not when true time does', async () => {
    const s = new Scheduler();
    const slow = new SimClock(s, 'c', { rate: 0.5 });
    let firedAt = -1;
    slow.setTimer(() => {
      firedAt = s.now;
    }, 10);
    await s.run();
    expect(firedAt).toBeCloseTo(20, 5);
  });

  it('re-places pending timers when its rate changes or it steps', async () => {
    const s = new Scheduler();
    const c = new SimClock(s, 'c');
    const fired: number[] = [];
    c.setTimer(() => fired.push(s.now), 100);
    c.setTimer(() => fired.push(s.now), 300);
    s.at(50, 'world', () => c.setRate(2)); // reading 50; 100 is reached 25 ms later
    s.at(80, 'world', () => c.stepMonotonic(200)); // reading 110 + 200 = 310 ≥ 300: due now
    await s.run();
    expect(fired[0]).toBeCloseTo(75, 5);
    expect(fired[1]).toBeCloseTo(80, 5);
  });

  it('keeps the monotonic clock monotonic: it refuses backward steps, the wall clock steps alone', () => {
    const s = new Scheduler();
    const c = new SimClock(s, 'c', { offset: 5 });
    expect(() => c.stepMonotonic(-1)).toThrow(RangeError);
    const before = c.now();
    c.stepWall(-60_000);
    expect(c.now()).toBe(before);
    expect(c.wallNow()).toBe(1.7e12 + 5 - 60_000);
  });

  it('maps a reading inside a forward step to the moment of the step', async () => {
    const s = new Scheduler();
    const c = new SimClock(s, 'c');
    s.at(10, 'world', () => c.stepMonotonic(100));
    await s.run();
    expect(c.trueTimeOf(50)).toBe(10);
    expect(c.trueTimeOf(120)).toBeCloseTo(20, 9);
  });

  it('drives the library sleep helper in simulated time', async () => {
    const s = new Scheduler();
    const c = new SimClock(s, 'c', { rate: 2 });
    let woke = -1;
    s.at(0, 'c', () => {
      void sleep(c, 40).then(() => {
        woke = s.now;
      });
    });
    await s.run();
    expect(woke).toBeCloseTo(20, 5);
  });
});
