import { describe, expect, it } from 'vitest';
import {
  type Acquisition,
  check,
  checkCleanup,
  checkFencedStore,
  checkFenceOrder,
  checkLiveness,
  checkMutualExclusion,
  checkQueue,
  emptyHistory,
  FencedStore,
  type History,
  holdsOf,
} from './checker.js';

/** An acquisition of "a" that succeeded at `ok` and is valid until `until`. */
function held(id: string, ok: number, until: number, more: Partial<Acquisition> = {}): Acquisition {
  return {
    id,
    client: id,
    resources: ['a'],
    startedAt: ok - 1,
    okAt: ok,
    endedAt: ok,
    fences: { a: 1 },
    deadlines: [{ at: ok, until }],
    releasedAt: null,
    uses: [],
    ...more,
  };
}

function history(parts: Partial<History>): History {
  return { ...emptyHistory(), ...parts };
}

describe('I1 mutual exclusion', () => {
  it('accepts holds that follow each other, even back to back', () => {
    const h = history({
      acquisitions: [held('x', 0, 100, { releasedAt: 10 }), held('y', 10, 100)],
    });
    expect(checkMutualExclusion(h)).toEqual([]);
  });

  it('fires when a second holder gets in before the first released', () => {
    const h = history({
      acquisitions: [held('x', 0, 100, { releasedAt: 30 }), held('y', 20, 100)],
    });
    const vs = checkMutualExclusion(h);
    expect(vs).toHaveLength(1);
    expect(vs[0]?.message).toMatch(/"a" held by x .* and by y/);
  });

  it('ends a hold at the believed validity deadline when there is no release', () => {
    expect(
      checkMutualExclusion(history({ acquisitions: [held('x', 0, 50), held('y', 60, 100)] })),
    ).toEqual([]);
    expect(
      checkMutualExclusion(history({ acquisitions: [held('x', 0, 50), held('y', 40, 100)] })),
    ).toHaveLength(1);
  });

  it('extends a hold by every later belief in a longer deadline', () => {
    const x = held('x', 0, 50, {
      deadlines: [
        { at: 0, until: 50 },
        { at: 40, until: 120 },
      ],
    });
    expect(checkMutualExclusion(history({ acquisitions: [x, held('y', 100, 200)] }))).toHaveLength(
      1,
    );
    expect(checkMutualExclusion(history({ acquisitions: [x, held('y', 130, 200)] }))).toEqual([]);
  });

  it('does not count the gap after a lapse until the client believes in a new deadline', () => {
    const x = held('x', 0, 50, {
      deadlines: [
        { at: 0, until: 50 },
        { at: 70, until: 150 },
      ],
    });
    expect(holdsOf(x, 'a').map((hd) => [hd.from, hd.to])).toEqual([
      [0, 50],
      [70, 150],
    ]);
    const y = held('y', 55, 65, { releasedAt: 65 });
    expect(checkMutualExclusion(history({ acquisitions: [x, y] }))).toEqual([]);
  });

  it('counts a late use as held: a client that stalled after its check writes in the next hold', () => {
    const x = held('x', 0, 50, { uses: [{ at: 80, resource: 'a' }] });
    expect(checkMutualExclusion(history({ acquisitions: [x, held('y', 60, 100)] }))).toHaveLength(
      1,
    );
    const early = held('x', 0, 50, { uses: [{ at: 55, resource: 'a' }] });
    expect(checkMutualExclusion(history({ acquisitions: [early, held('y', 60, 100)] }))).toEqual(
      [],
    );
  });

  it('never compares an acquisition with itself, other resources, or acquisitions that failed', () => {
    const x = held('x', 0, 100, { uses: [{ at: 150, resource: 'a' }] });
    const other = held('o', 10, 100, { resources: ['b'], fences: { b: 1 } });
    const failed: Acquisition = { ...held('f', 10, 100), okAt: null, deadlines: [] };
    expect(checkMutualExclusion(history({ acquisitions: [x, other, failed] }))).toEqual([]);
  });

  it('checks every resource of a multi-resource lock', () => {
    const both = held('x', 0, 100, { resources: ['a', 'b'], fences: { a: 1, b: 1 } });
    const b = held('y', 50, 100, { resources: ['b'], fences: { b: 2 } });
    expect(checkMutualExclusion(history({ acquisitions: [both, b] }))).toHaveLength(1);
  });
});

describe('I2 fencing order', () => {
  it('fires when a later acquisition gets a token no greater than an earlier completed one', () => {
    const x = held('x', 10, 100, { fences: { a: 5 } });
    const y = held('y', 30, 100, { startedAt: 20, fences: { a: 5 } });
    expect(checkFenceOrder(history({ acquisitions: [x, y] }))).toHaveLength(1);
    const z = held('z', 30, 100, { startedAt: 20, fences: { a: 6 } });
    expect(checkFenceOrder(history({ acquisitions: [x, z] }))).toEqual([]);
  });

  it('does not order acquisitions that overlapped in time', () => {
    const x = held('x', 10, 100, { startedAt: 0, fences: { a: 9 } });
    const y = held('y', 12, 100, { startedAt: 5, fences: { a: 3 } });
    expect(checkFenceOrder(history({ acquisitions: [x, y] }))).toEqual([]);
  });

  it('compares each resource of multi-resource locks separately', () => {
    const x = held('x', 10, 100, { resources: ['a', 'b'], fences: { a: 5, b: 50 } });
    const y = held('y', 30, 100, { startedAt: 20, resources: ['b'], fences: { b: 40 } });
    const vs = checkFenceOrder(history({ acquisitions: [x, y] }));
    expect(vs).toHaveLength(1);
    expect(vs[0]?.message).toMatch(/"b"/);
  });
});

describe('I3 fenced store', () => {
  it('accepts growing tokens and repeated writes of one holder', () => {
    const h = emptyHistory();
    const store = new FencedStore(h.writes);
    expect(store.write(1, 'a', 5, 'x')).toBe(true);
    expect(store.write(2, 'a', 5, 'x')).toBe(true);
    expect(store.write(3, 'a', 7, 'y')).toBe(true);
    expect(store.write(4, 'a', 6, 'x')).toBe(false);
    expect(checkFencedStore(h)).toEqual([]);
  });

  it('fires when two holders with one token both get writes in', () => {
    const h = emptyHistory();
    const store = new FencedStore(h.writes);
    store.write(1, 'a', 5, 'x');
    store.write(2, 'a', 5, 'y');
    expect(checkFencedStore(h)).toHaveLength(1);
  });

  it('fires on any accepted write that goes back in token order', () => {
    const h = history({
      writes: [
        { at: 1, resource: 'a', token: 9, acquisition: 'x', accepted: true },
        { at: 2, resource: 'a', token: 3, acquisition: 'y', accepted: true },
      ],
    });
    expect(checkFencedStore(h)).toHaveLength(1);
  });
});

describe('I4 liveness', () => {
  it('fires when an uncontended acquisition fails or takes longer than its budget', () => {
    const fast = held('fast', 20, 100, { startedAt: 0 });
    const slow = held('slow', 500, 600, { startedAt: 0 });
    const failed: Acquisition = { ...held('failed', 0, 0), okAt: null, endedAt: 30, deadlines: [] };
    const h = history({
      acquisitions: [fast, slow, failed],
      liveness: ['fast', 'slow', 'failed'].map((acquisition) => ({ acquisition, budget: 100 })),
    });
    expect(checkLiveness(h).map((v) => v.message.split(' ')[0])).toEqual(['slow', 'failed']);
  });
});

describe('I5 cleanup', () => {
  it('fires only for leftovers on nodes that stayed reachable', () => {
    const probe = { at: 1, node: 'n0', acquisition: 'x' };
    const h = history({
      probes: [
        { ...probe, reachable: true, leftovers: ['p.0'] },
        { ...probe, node: 'n1', reachable: false, leftovers: ['p.0'] },
        { ...probe, node: 'n2', reachable: true, leftovers: [] },
      ],
    });
    const vs = checkCleanup(h);
    expect(vs).toHaveLength(1);
    expect(vs[0]?.message).toMatch(/^n0 still holds p\.0/);
  });
});

describe('I6 queue', () => {
  // w waits from 0 (queued by 5); x holds until 40, then y, then w.
  const x = held('x', 1, 1000, { startedAt: 0, releasedAt: 40 });
  const w: Acquisition = held('w', 90, 1000, { startedAt: 0, releasedAt: 100 });
  const bound = { acquisition: 'w', after: 5, gap: 20 };

  it('accepts a waiter served in arrival order with short hand-overs', () => {
    const y = held('y', 50, 1000, { startedAt: 2, releasedAt: 80 });
    expect(checkQueue(history({ acquisitions: [x, y, w], fairness: [bound] }))).toEqual([]);
  });

  it('fires when someone who began after the waiter was queued is served first', () => {
    const late = held('late', 50, 1000, { startedAt: 10, releasedAt: 80 });
    const vs = checkQueue(history({ acquisitions: [x, late, w], fairness: [bound] }));
    expect(vs).toHaveLength(1);
    expect(vs[0]?.message).toMatch(/late began at 10\.000, after w was queued/);
  });

  it('fires when the resource stays free longer than the bound while the waiter waits', () => {
    const y = held('y', 70, 1000, { startedAt: 2, releasedAt: 80 });
    const vs = checkQueue(history({ acquisitions: [x, y, w], fairness: [bound] }));
    // Free from 40 to 70 (30 ms), and from 80 to 90 (10 ms, within the bound).
    expect(vs.map((v) => v.message)).toEqual([
      expect.stringMatching(/stayed free from 40\.000 to 70\.000 \(30\.000 ms, bound 20 ms\)/),
    ]);
  });

  it('holds a waiter that gave up to the same bound until it gave up, and one that never returned', () => {
    const gaveUp: Acquisition = { ...w, okAt: null, endedAt: 200, deadlines: [], releasedAt: null };
    expect(checkQueue(history({ acquisitions: [x, gaveUp], fairness: [bound] }))).toHaveLength(1);
    const hung: Acquisition = { ...gaveUp, endedAt: null };
    expect(checkQueue(history({ acquisitions: [x, hung], fairness: [bound] }))[0]?.message).toMatch(
      /never returned/,
    );
  });
});

describe('check', () => {
  it('reports nothing for an empty history and every invariant it finds otherwise', () => {
    expect(check(emptyHistory())).toEqual([]);
    const x = held('x', 10, 100, { fences: { a: 5 } });
    const y = held('y', 30, 100, { startedAt: 20, fences: { a: 5 } });
    expect(new Set(check(history({ acquisitions: [x, y] })).map((v) => v.invariant))).toEqual(
      new Set(['I1', 'I2']),
    );
  });
});
