import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countByInvariant } from './checker.js';
import { explain, simParameters } from './replay.js';
import { fenceScenario, queueScenario } from './schedule.js';
import { runScenario, type Scenario } from './world.js';

describe('fair waiting: the nodes queue waiters and hand the lock on in turn (I6)', () => {
  it('serves live waiters first come, first served, with no idle gap beyond one hand-over', async () => {
    await fc.assert(
      fc.asyncProperty(queueScenario(), async (s) => {
        const r = await runScenario(s);
        expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
        // Every waiter was served: nobody gave up after its 30 s wait.
        expect(r.stats.acquired, explain(s, r)).toBe(r.stats.acquisitions);
      }),
      simParameters(50),
    );
  }, 300_000);
});

describe('fair waiting: failing cases found by the properties (scripts and client as of this commit)', () => {
  it('keeps the place of a first waiter that was handed the lock on a minority of the nodes only (I6)', async () => {
    // No fault; node clocks within 0.002 % of each other. c0 is queued from
    // 223 ms on and first everywhere (ticket 2) by 324 ms. At 325 ms n1 hands
    // c0 the lock ('<prefix>.g', 50 ms grace) and removes c0's queue entry
    // there, while n0 and n2 still hold another waiter's hand-over: c0's claim
    // fails. At 368 ms n1, where c0 is no longer queued, gives it a fresh
    // ticket, 7, behind the waiters queued since; c0 takes 7 everywhere (the
    // highest ticket wins) and drops from first to fifth. c4 (began at 298 ms)
    // and c2 (315 ms) are served before it. A waiter that cannot gather a
    // quorum of hand-overs within one grace loses its place on the nodes that
    // handed it the lock, and every later waiter can overtake it.
    const s: Scenario = {
      seed: 1,
      options: {
        ttl: 157,
        nodeTimeout: 8,
        driftFactor: 0.01,
        driftMs: 2,
        retry: { minDelay: 1, maxDelay: 1, factor: 2 },
      },
      nodes: [
        { clock: { wallOffset: 1700000000000, rate: 0.99998 } },
        { clock: { wallOffset: 1700000000000, rate: 1.00002 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
      ],
      clients: [
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 0.1, replyDelay: 1.5, jitter: 1.6 },
          startAt: 223,
          program: [
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 20,
              writes: 0,
              think: 0,
              abandon: true,
            },
          ],
        },
        {
          clock: { offset: 0, rate: 0.99937 },
          link: { requestDelay: 0.1, replyDelay: 0.1, jitter: 1.4 },
          startAt: 30,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 25, writes: 2, think: 32 },
            { kind: 'using', resources: ['a'], wait: 30000, hold: 141, writes: 1, think: 64 },
            { kind: 'using', resources: ['a'], wait: 30000, hold: 115, writes: 0, think: 57 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 145, writes: 0, think: 34 },
          ],
        },
        {
          clock: { offset: 999993, rate: 0.99829 },
          link: { requestDelay: 1.8, replyDelay: 0.1, jitter: 1.3 },
          startAt: 4,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 150, writes: 1, think: 16 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 112, writes: 1, think: 1 },
            { kind: 'using', resources: ['a'], wait: 30000, hold: 59, writes: 1, think: 50 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 3,
              writes: 1,
              think: 73,
              abandon: true,
            },
          ],
        },
        {
          clock: { offset: 797844, rate: 1.0029 },
          link: { requestDelay: 2.5, replyDelay: 2.2, jitter: 1.6 },
          startAt: 221,
          program: [
            { kind: 'using', resources: ['a'], wait: 30000, hold: 61, writes: 1, think: 11 },
            { kind: 'using', resources: ['a'], wait: 30000, hold: 64, writes: 0, think: 33 },
            { kind: 'using', resources: ['a'], wait: 30000, hold: 44, writes: 1, think: 49 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 27, writes: 0, think: 30 },
          ],
        },
        {
          clock: { offset: 999990, rate: 1.00002 },
          link: { requestDelay: 0.1, replyDelay: 0.4, jitter: 1.4 },
          startAt: 298,
          program: [
            { kind: 'using', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 6 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 7,
              writes: 2,
              think: 99,
              abandon: true,
            },
            { kind: 'using', resources: ['a'], wait: 30000, hold: 3, writes: 1, think: 49 },
          ],
        },
        {
          clock: { offset: 108236, rate: 0.99996 },
          link: { requestDelay: 0.6, replyDelay: 1.9, jitter: 1.3 },
          startAt: 228,
          program: [
            { kind: 'using', resources: ['a'], wait: 30000, hold: 11, writes: 0, think: 91 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 67, writes: 2, think: 88 },
          ],
        },
      ],
      faults: [],
      probes: true,
      fairness: { after: 40.7, gap: 1084 },
    };
    const r = await runScenario(s);
    expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
  });

  it("looks again when the holder's key expires on a quorum, though some nodes handed the waiter the lock (I6)", async () => {
    // No fault. c3 walks away from its lock (valid to ~779 ms); c2 and c0
    // queue behind it, c2 first. From 279 ms on, two of five nodes hand c2
    // the lock while the other three still hold c3's key. c2's rounds fail on
    // the third refusal, before the last refusal named when c3's key expires:
    // with the expiry known on fewer than a quorum, c2 slept a whole queue
    // refresh (1 s) instead of until the key expired. Its hand-overs and its
    // place lapsed meanwhile, and c0, behind it, took the lock twice before it
    // (I6 at 1307 ms; c2 served at 1798 ms). A waiter that heard every node
    // judges on every answer.
    const s: Scenario = {
      seed: 2059338745,
      options: {
        ttl: 525,
        nodeTimeout: 10,
        driftFactor: 0.01,
        driftMs: 2,
        retry: { minDelay: 1, maxDelay: 1, factor: 2 },
      },
      nodes: [
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 0.99918 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
      ],
      clients: [
        {
          clock: { offset: 0, rate: 1.00168 },
          link: { requestDelay: 1, replyDelay: 2, jitter: 0.4 },
          startAt: 289,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 3, replyDelay: 0.1, jitter: 0.4 },
          startAt: 220,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 27, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 1.2, replyDelay: 0.4, jitter: 1.5 },
          startAt: 271,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 753, rate: 1.00135 },
          link: { requestDelay: 1.7, replyDelay: 3, jitter: 1.9 },
          startAt: 72,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 136, writes: 0, think: 34 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 0,
              writes: 0,
              think: 0,
              abandon: true,
            },
          ],
        },
      ],
      faults: [],
      probes: true,
      fairness: { after: 46.5, gap: 1105 },
    };
    const r = await runScenario(s);
    expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
  });

  it('puts a waiter back in its place before handing a free key to a waiter behind it (I6)', async () => {
    // No fault. c0's claim at 895 ms is granted by n1 and n3 (which takes it
    // out of their queues) but fails; its undo there hands the lock to c1,
    // whose next acquisition queues behind c0 (ticket 5 against 4). When
    // c1's walked-away lock runs out, c0's next request at n3 found c0
    // missing from the queue and handed the free key to c1 before queueing
    // c0 again: c1 was served before c0 (I6 at 1163 ms). The node now puts a
    // waiter with a ticket back in its place before it hands a free key on.
    const s: Scenario = {
      seed: 384644494,
      options: {
        ttl: 150,
        nodeTimeout: 8,
        driftFactor: 0.01,
        driftMs: 2,
        retry: { minDelay: 1, maxDelay: 1, factor: 2 },
      },
      nodes: [
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000005, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
      ],
      clients: [
        {
          clock: { offset: 753, rate: 1 },
          link: { requestDelay: 1.8, replyDelay: 1.1, jitter: 0.5 },
          startAt: 178,
          program: [
            { kind: 'using', resources: ['a'], wait: 30000, hold: 106, writes: 0, think: 88 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 11,
              writes: 0,
              think: 69,
              abandon: true,
            },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 0.99839 },
          link: { requestDelay: 0.7, replyDelay: 2.5, jitter: 1 },
          startAt: 181,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 83, writes: 0, think: 12 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 0,
              writes: 0,
              think: 0,
              abandon: true,
            },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
      ],
      faults: [],
      probes: true,
      fairness: { after: 32.6, gap: 1070 },
    };
    const r = await runScenario(s);
    expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
  });

  it('raises the ticket of a waiter that keeps asking for the lock one node handed it (I6)', async () => {
    // No fault, three nodes. c4's release at 301 ms hands the lock to a
    // different waiter on each node: each node had queued c0, c1 and c3 in
    // the order their first requests arrived. The waiters agree on tickets
    // afterwards (c3 2, c0 and c1 3), but a waiter that asks for the lock a
    // node handed it kept its first ticket there (c0 1 on n0, c1 1 on n2), so
    // each node handed the lock back to its own first waiter every time the
    // hand-over ran out: nobody reached a quorum for 1.2 s (I6). Asking for
    // a handed-over lock now raises the waiter's ticket there as any round does.
    const s: Scenario = {
      seed: 2113929211,
      options: {
        ttl: 150,
        nodeTimeout: 8,
        driftFactor: 0.01,
        driftMs: 2,
        retry: { minDelay: 1, maxDelay: 1, factor: 2 },
      },
      nodes: [
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1.00041 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
      ],
      clients: [
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 2.4, replyDelay: 0.4, jitter: 1.6 },
          startAt: 299,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 0.99959 },
          link: { requestDelay: 0.5, replyDelay: 2.1, jitter: 1.8 },
          startAt: 300,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 84, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 750, rate: 1.00224 },
          link: { requestDelay: 0.1, replyDelay: 0.7, jitter: 1.3 },
          startAt: 150,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 89, writes: 0, think: 75 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 1.2, replyDelay: 0.1, jitter: 0.7 },
          startAt: 300,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 0.3, replyDelay: 2.3, jitter: 1.6 },
          startAt: 297,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
      ],
      faults: [],
      probes: true,
      fairness: { after: 35.6, gap: 1075 },
    };
    const r = await runScenario(s);
    expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
  });

  it('takes a free key as handed over where a waiter with a ticket is no longer queued (I6)', async () => {
    // No fault, three nodes. c0, first in line, was handed the lock by n0
    // while n1, whose queue was empty, granted its round's own value: one
    // grant of each kind, no quorum of either, and the next waiter got both
    // nodes first (I6: c1 served at 1080 ms before c0, queued since 415 ms).
    // A waiter with a ticket now counts as queued on every node: a free key
    // is taken as handed over there too, so its grants add up.
    const s: Scenario = {
      seed: 1997870570,
      options: {
        ttl: 150,
        nodeTimeout: 8,
        driftFactor: 0.01,
        driftMs: 2,
        retry: { minDelay: 1, maxDelay: 1, factor: 2 },
      },
      nodes: [
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1699999999999, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
      ],
      clients: [
        {
          clock: { offset: 0, rate: 0.99944 },
          link: { requestDelay: 2, replyDelay: 1.3, jitter: 0.3 },
          startAt: 215,
          program: [
            { kind: 'using', resources: ['a'], wait: 30000, hold: 106, writes: 0, think: 0 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 0.99972 },
          link: { requestDelay: 0.1, replyDelay: 0.1, jitter: 1.9 },
          startAt: 179,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 17, writes: 0, think: 24 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 72, writes: 0, think: 0 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 0.1, replyDelay: 0.1, jitter: 0 },
          startAt: 273,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 96, writes: 0, think: 0 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 753, rate: 1 },
          link: { requestDelay: 2.3, replyDelay: 0.1, jitter: 1.1 },
          startAt: 45,
          program: [
            { kind: 'using', resources: ['a'], wait: 30000, hold: 99, writes: 0, think: 45 },
            { kind: 'using', resources: ['a'], wait: 30000, hold: 65, writes: 0, think: 5 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 0,
              writes: 0,
              think: 0,
              abandon: true,
            },
          ],
        },
      ],
      faults: [],
      probes: true,
      fairness: { after: 30.799999999999997, gap: 1067 },
    };
    const r = await runScenario(s);
    expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
  });

  it('waits one millisecond, not a queue refresh, for a hand-over key at its expiry instant (I6)', async () => {
    // No fault. c3 walked away from a lock handed to it; c0 asked at the very
    // millisecond the key expired on two nodes. Redis keeps a key until its
    // expiry time has passed, so the key was there with a PTTL of 0, which the
    // reply reported as no turn in the way at all: c0 slept a whole queue
    // refresh and the lock stayed free for 1 099 ms (I6 bound 1 060 ms).
    const s: Scenario = {
      seed: 0,
      options: {
        ttl: 150,
        nodeTimeout: 8,
        driftFactor: 0.01,
        driftMs: 2,
        retry: { minDelay: 1, maxDelay: 1, factor: 2 },
      },
      nodes: [
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
        { clock: { wallOffset: 1700000000000, rate: 1 } },
      ],
      clients: [
        {
          clock: { offset: 0, rate: 1.00111 },
          link: { requestDelay: 0.1, replyDelay: 0.1, jitter: 0 },
          startAt: 220,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 101, writes: 0, think: 1 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 2,
              writes: 0,
              think: 82,
              abandon: true,
            },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 0.1, replyDelay: 0.8, jitter: 0.5 },
          startAt: 159,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 12, writes: 0, think: 9 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 17, writes: 0, think: 0 },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 0, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 1 },
          link: { requestDelay: 0.1, replyDelay: 2.2, jitter: 0.4 },
          startAt: 182,
          program: [
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 0,
              writes: 0,
              think: 2,
              abandon: true,
            },
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 81, writes: 0, think: 0 },
          ],
        },
        {
          clock: { offset: 0, rate: 0.99894 },
          link: { requestDelay: 2.3, replyDelay: 0.1, jitter: 0.3 },
          startAt: 280,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 30000, hold: 145, writes: 0, think: 39 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 30000,
              hold: 0,
              writes: 0,
              think: 0,
              abandon: true,
            },
          ],
        },
      ],
      faults: [],
      probes: true,
      fairness: { after: 26.3, gap: 1060 },
    };
    const r = await runScenario(s);
    expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
  });

  it('leaves no lock handed over to a waiter that already acquired on its first round (I5)', async () => {
    // c1's first round (a \`using\`, so a waiter) is refused on n1 and n3,
    // where it is queued, and granted on n0, n2 and n4: it holds the lock and
    // returns, without leaving the queues of n1 and n3. c3's round, granted on
    // n1 and n3 only, is undone: each undo hands the lock on to the first
    // waiter there, c1, which already holds it. n1 and n3 keep
    // '<c1's prefix>.g' for the grace after c1's acquisition settled (I5), and
    // c1's stale entries make every release there hand the lock to a holder
    // that will never take it.
    const s: Scenario = {
      seed: 0,
      options: {
        ttl: 1624,
        nodeTimeout: 11,
        driftFactor: 0.01,
        driftMs: 2,
        retry: { minDelay: 1, maxDelay: 2, factor: 2 },
      },
      nodes: [
        { clock: { wallOffset: 1700000000000, rate: 1.004 } },
        { clock: { wallOffset: 1700000000000, rate: 1.004 } },
        { clock: { wallOffset: 1700000000000, rate: 1.004 } },
        { clock: { wallOffset: 1700000000000, rate: 1.004 } },
        { clock: { wallOffset: 1700000000000, rate: 0.996 } },
      ],
      clients: [
        {
          clock: { offset: 467, rate: 0.996 },
          startAt: 39,
          program: [
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 5872,
              hold: 1413,
              writes: 3,
              think: 3,
              abandon: true,
            },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 5872,
              hold: 763,
              writes: 1,
              think: 10,
              extend: { at: 0.51 },
            },
            { kind: 'using', resources: ['a'], wait: 5872, hold: 1721, writes: 6, think: 11 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 5872,
              hold: 1072,
              writes: 6,
              think: 3,
              abandon: true,
            },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 5872,
              hold: 309,
              writes: 3,
              think: 18,
              abandon: true,
            },
            { kind: 'using', resources: ['a'], wait: 5872, hold: 1705, writes: 2, think: 18 },
          ],
          link: { requestDelay: 0.3, replyDelay: 0.7, jitter: 0.9 },
          links: {
            '0': { requestDelay: 0.7, replyDelay: 0.2, jitter: 0.9 },
            '1': { requestDelay: 0.6, replyDelay: 1, jitter: 0.5 },
            '2': { requestDelay: 0.7, replyDelay: 0.2, jitter: 0.7 },
            '3': { requestDelay: 0.8, replyDelay: 0.3, jitter: 0.9 },
            '4': { requestDelay: 0.7, replyDelay: 0.1, jitter: 0.8 },
          },
        },
        {
          clock: { offset: 996, rate: 1 },
          startAt: 0,
          program: [
            { kind: 'using', resources: ['a'], wait: 5872, hold: 1819, writes: 3, think: 19 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 5872,
              hold: 568,
              writes: 2,
              think: 2,
              extend: { at: 0.92, ttl: 1250 },
              abandon: true,
            },
            { kind: 'using', resources: ['a'], wait: 5872, hold: 1770, writes: 4, think: 11 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 5872,
              hold: 162,
              writes: 3,
              think: 28,
              abandon: true,
            },
          ],
          link: { requestDelay: 1.3, replyDelay: 6.2, jitter: 0.3 },
          links: {
            '0': { requestDelay: 1.2, replyDelay: 8.4, jitter: 0.9 },
            '1': { requestDelay: 9.8, replyDelay: 1.6, jitter: 0.9 },
            '2': { requestDelay: 5.1, replyDelay: 1.2, jitter: 0.6 },
            '3': { requestDelay: 8.8, replyDelay: 6, jitter: 0.6 },
            '4': { requestDelay: 1.1, replyDelay: 1.6, jitter: 0.1 },
          },
        },
        {
          clock: { offset: 999, rate: 0.996 },
          startAt: 15,
          program: [
            { kind: 'using', resources: ['a'], wait: 5872, hold: 81, writes: 3, think: 8 },
            { kind: 'acquire', resources: ['a'], wait: 5872, hold: 455, writes: 3, think: 10 },
            {
              kind: 'acquire',
              resources: ['a'],
              wait: 5872,
              hold: 1104,
              writes: 1,
              think: 13,
              extend: { at: 0.13, ttl: 422 },
              abandon: true,
            },
          ],
          link: { requestDelay: 8.3, replyDelay: 1.5, jitter: 0 },
          links: {
            '0': { requestDelay: 8.1, replyDelay: 3.1, jitter: 0.1 },
            '1': { requestDelay: 3.5, replyDelay: 8.5, jitter: 0.9 },
            '2': { requestDelay: 1.2, replyDelay: 4.8, jitter: 0.8 },
            '3': { requestDelay: 8.2, replyDelay: 1.6, jitter: 0.4 },
            '4': { requestDelay: 9.2, replyDelay: 4.1, jitter: 0.2 },
          },
        },
        {
          clock: { offset: 9, rate: 1 },
          startAt: 0,
          program: [
            { kind: 'acquire', resources: ['a'], wait: 5872, hold: 812, writes: 3, think: 22 },
            { kind: 'acquire', resources: ['a'], wait: 5872, hold: 1510, writes: 3, think: 8 },
          ],
          link: { requestDelay: 1.2, replyDelay: 7.6, jitter: 0 },
          links: {
            '0': { requestDelay: 3.6, replyDelay: 1.4, jitter: 0.7 },
            '1': { requestDelay: 3.6, replyDelay: 8.5, jitter: 0.2 },
            '2': { requestDelay: 9.1, replyDelay: 6.8, jitter: 0.3 },
            '3': { requestDelay: 1.3, replyDelay: 3.1, jitter: 0.7 },
            '4': { requestDelay: 1.2, replyDelay: 8.2, jitter: 0.3 },
          },
        },
      ],
      faults: [
        { at: 1098, kind: 'delay', node: 0, client: 2, extra: 32, duration: 284 },
        { at: 1742, kind: 'delay', node: 1, client: 2, extra: 39, duration: 127 },
      ],
      probes: true,
    };
    const r = await runScenario(s);
    expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
  });
});

describe('fence tokens across lost data and expired counters (I2, I3)', () => {
  it('each holder gets a token above every earlier one, through restarts that lost the counters and through counters that expired', async () => {
    await fc.assert(
      fc.asyncProperty(fenceScenario(), async (s) => {
        const r = await runScenario(s);
        expect(r.violations.length + r.problems.length, explain(s, r)).toBe(0);
      }),
      simParameters(100),
    );
  }, 300_000);
});

describe('fence seeds after a restart that lost the data (docs/safety.md, restart condition 3)', () => {
  /**
   * c0's wall clock agrees with the nodes': its proposal (wall plus the
   * client's margin) is taken, and its token sits that margin above server
   * time. n0 and n1 then lose their data and come back `restartAfter` ms
   * later; c1 (wall 1.5 s behind: its proposal is refused) is cut off from n2
   * and gets n0 and n1, which seed from their own clocks.
   */
  const run = (restartAfter: number) => {
    const node = { clock: { wallOffset: 1700000000000, rate: 1 } };
    const link = { requestDelay: 0.5, replyDelay: 0.5, jitter: 0 };
    const op = {
      kind: 'acquire' as const,
      resources: ['a'],
      wait: 1000,
      hold: 10,
      writes: 1,
      think: 0,
    };
    const s: Scenario = {
      seed: 1,
      options: {
        ttl: 200,
        nodeTimeout: 10,
        driftFactor: 0.01,
        driftMs: 2,
        retry: { minDelay: 1, maxDelay: 5 },
      },
      nodes: [node, node, node],
      clients: [
        { clock: {}, link, startAt: 0, program: [op] },
        {
          clock: { wallOffset: 1700000000000 - 1500 },
          link,
          startAt: 50 + restartAfter + 50,
          program: [op],
        },
      ],
      faults: [
        { at: 40, kind: 'crash', node: 0, keepData: false, restartAfter },
        { at: 40, kind: 'crash', node: 1, keepData: false, restartAfter },
        { at: 0, kind: 'partition', node: 2, client: 1, mode: 'both', duration: 100_000 },
      ],
    };
    return { s, r: runScenario(s) };
  };

  it('a restart longer than the node clocks apart plus 1 s keeps tokens growing', async () => {
    const { s, r } = run(1_100);
    const result = await r;
    expect(result.stats.acquired, explain(s, result)).toBe(2);
    expect(result.violations.length + result.problems.length, explain(s, result)).toBe(0);
  });

  it('canary: a restart within the 1 s a proposal may run ahead lets a later holder get a smaller token', async () => {
    const { s, r } = run(60);
    const result = await r;
    const c = countByInvariant(result.violations);
    expect(result.stats.acquired, explain(s, result)).toBe(2);
    expect(c.I2, explain(s, result)).toBeGreaterThan(0);
    // The guarded store still refuses the smaller token.
    expect(c.I3, explain(s, result)).toBe(0);
  });
});
