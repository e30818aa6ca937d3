/**
 * fast-check generators of scenarios. `safeScenario` keeps every fault inside
 * the safety assumptions of docs/safety.md §2; `livenessScenario` keeps a
 * majority of nodes healthy and has one client (no contention); each canary
 * breaks one assumption on purpose, timed so that the overlap is certain to
 * happen.
 */
import fc from 'fast-check';
import { QUEUE_REFRESH_MS } from '../../src/redis/redlock.js';
import { type LinkSpec, SEED_WINDOW_US } from './node.js';
import {
  type ClientSetup,
  type Fault,
  horizonOf,
  type NodeSetup,
  type Op,
  type Scenario,
  type ScenarioOptions,
} from './world.js';

/** Largest clock rate error of any party in runs inside the assumptions (driftFactor 0.01 covers 2×). */
export const MAX_RATE_ERROR = 0.004;
/** driftFactor and driftMs of every generated scenario (the library defaults). */
export const DRIFT = { driftFactor: 0.01, driftMs: 2 } as const;
/** Resources the programs lock. */
export const RESOURCES = ['a', 'b'] as const;
/** Node wall clocks start within this many ms of each other. */
const NODE_OFFSET = 10;

const rate = (maxError: number) =>
  fc
    .integer({ min: -Math.round(maxError * 1e5), max: Math.round(maxError * 1e5) })
    .map((e) => 1 + e / 1e5);

const nodeSetup = (maxRateError: number): fc.Arbitrary<NodeSetup> =>
  fc.record({
    clock: fc.record({
      wallOffset: fc.integer({ min: -NODE_OFFSET, max: NODE_OFFSET }).map((o) => 1.7e12 + o),
      rate: rate(maxRateError),
    }),
  });

const options = (): fc.Arbitrary<ScenarioOptions> =>
  fc
    .record({
      ttl: fc.integer({ min: 150, max: 600 }),
      nodeTimeout: fc.integer({ min: 8, max: 30 }),
      minDelay: fc.integer({ min: 1, max: 10 }),
      extraDelay: fc.integer({ min: 0, max: 50 }),
    })
    .map(({ ttl, nodeTimeout, minDelay, extraDelay }) => ({
      ttl,
      nodeTimeout,
      ...DRIFT,
      retry: { minDelay, maxDelay: minDelay + extraDelay, factor: 2 },
    }));

const resources = fc.constantFrom<readonly string[]>(['a'], ['a'], ['a'], ['b'], ['a', 'b']);

const op = (maxHold: number): fc.Arbitrary<Op> =>
  fc
    .record({
      kind: fc.constantFrom<Op['kind']>('acquire', 'acquire', 'try', 'using'),
      resources,
      ttl: fc.option(fc.integer({ min: 100, max: 600 }), { nil: undefined }),
      wait: fc.integer({ min: 0, max: 1500 }),
      hold: fc.integer({ min: 0, max: maxHold }),
      writes: fc.integer({ min: 0, max: 4 }),
      extend: fc.option(
        fc.record({
          at: fc.integer({ min: 0, max: 100 }).map((p) => p / 100),
          ttl: fc.option(fc.integer({ min: 100, max: 600 }), { nil: undefined }),
        }),
        { nil: undefined },
      ),
      abandon: fc.boolean(),
      think: fc.integer({ min: 0, max: 200 }),
    })
    .map((o) => {
      const { ttl, extend, abandon, ...rest } = o;
      return {
        ...rest,
        ...(ttl === undefined ? {} : { ttl }),
        ...(extend === undefined || o.kind === 'using'
          ? {}
          : { extend: extend.ttl === undefined ? { at: extend.at } : extend }),
        ...(abandon && o.kind !== 'using' ? { abandon: true } : {}),
      };
    });

const link = (maxBase: number) =>
  fc.record({
    requestDelay: fc.integer({ min: 1, max: maxBase * 10 }).map((d) => d / 10),
    replyDelay: fc.integer({ min: 1, max: maxBase * 10 }).map((d) => d / 10),
    jitter: fc.integer({ min: 0, max: 20 }).map((d) => d / 10),
  });

const client = (
  n: number,
  maxOps: number,
  maxHold: number,
  maxRateError: number,
  maxLinkDelay = 3,
): fc.Arbitrary<ClientSetup> =>
  fc
    .record({
      clock: fc.record({
        offset: fc.integer({ min: 0, max: 1_000_000 }),
        rate: rate(maxRateError),
      }),
      link: link(maxLinkDelay),
      // Some nodes sit closer to this client than others: replies come back in varied orders.
      perNode: fc.array(fc.option(link(maxLinkDelay), { nil: undefined, freq: 3 }), {
        minLength: n,
        maxLength: n,
      }),
      startAt: fc.integer({ min: 0, max: 200 }),
      program: fc.array(op(maxHold), { minLength: 1, maxLength: maxOps }),
    })
    .map(({ perNode, ...c }) => {
      const links: Record<number, LinkSpec> = {};
      perNode.forEach((l, i) => {
        if (l) links[i] = l;
      });
      return Object.keys(links).length > 0 ? { ...c, links } : c;
    });

/** The largest ttl any key of the scenario can be set or extended with. */
export function maxTtlOf(s: Pick<Scenario, 'options' | 'clients'>): number {
  let m = s.options.ttl;
  for (const c of s.clients) {
    for (const o of c.program) m = Math.max(m, o.ttl ?? 0, o.extend?.ttl ?? 0);
  }
  return m;
}

/** How far apart two node wall clocks can drift over `horizon` ms. */
function nodeClockSpread(horizon: number, maxRateError: number): number {
  return 2 * NODE_OFFSET + 2 * maxRateError * horizon + 4;
}

/** Faults of every kind, generated loosely; `constrain` then fits them to the assumptions. */
const rawFault = (nodes: number, clients: number): fc.Arbitrary<Fault> => {
  const at = fc.integer({ min: 0, max: 3000 });
  const node = fc.integer({ min: 0, max: nodes - 1 });
  const cl = fc.integer({ min: 0, max: clients - 1 });
  const duration = fc.integer({ min: 1, max: 1500 });
  return fc.oneof(
    fc.record({ at, kind: fc.constant('down' as const), node, duration }),
    fc.record({
      at,
      kind: fc.constant('crash' as const),
      node,
      keepData: fc.boolean(),
      restartAfter: duration,
    }),
    fc.record({ at, kind: fc.constant('pause' as const), node, duration }),
    fc.record({
      at,
      kind: fc.constant('partition' as const),
      node,
      client: cl,
      mode: fc.constantFrom('requests' as const, 'replies' as const, 'both' as const),
      duration,
    }),
    fc.record({
      at,
      kind: fc.constant('delay' as const),
      node,
      client: cl,
      extra: fc.integer({ min: 1, max: 120 }),
      duration,
    }),
    fc.record({ at, kind: fc.constant('reorder' as const), node, client: cl, duration }),
    fc.record({
      at,
      kind: fc.constant('nodeClockStep' as const),
      node,
      ms: fc.integer({ min: -20, max: 10 }).map((m) => m / 10),
    }),
    fc.record({
      at,
      kind: fc.constant('nodeClockRate' as const),
      node,
      rate: rate(MAX_RATE_ERROR),
    }),
    fc.record({ at, kind: fc.constant('clientPause' as const), client: cl, duration }),
    fc.record({
      at,
      kind: fc.constant('clientWallStep' as const),
      client: cl,
      ms: fc.integer({ min: -100_000, max: 100_000 }),
    }),
  );
};

/**
 * Fits faults to the assumptions: a node that loses its data stays down
 * longer than any key can live, and longer than node wall clocks can
 * disagree plus the window a seed proposal may run ahead of a node's clock
 * (so fence counters it re-seeds start above every token issued before); a
 * node's wall clock steps forward by at most driftMs in total.
 */
function constrain(s: Scenario): Scenario {
  const backward = s.faults.filter((f) => f.kind === 'nodeClockStep' && f.ms < 0).length;
  const spread = nodeClockSpread(horizonOf(s) + 4 * maxTtlOf(s), MAX_RATE_ERROR) + 2 * backward;
  // A fresh counter may start up to the seed window above its node's clock (docs/safety.md, restart condition 3).
  const seedWindow = SEED_WINDOW_US / 1000;
  const floor =
    Math.ceil(Math.max(maxTtlOf(s) * (1 + 3 * MAX_RATE_ERROR), spread + seedWindow)) + 5;
  const forward = new Map<number, number>();
  const faults = [...s.faults]
    .sort((a, b) => a.at - b.at)
    .map((f): Fault => {
      if (f.kind === 'crash' && !f.keepData) return { ...f, restartAfter: floor + f.restartAfter };
      if (f.kind === 'nodeClockStep' && f.ms > 0) {
        const used = forward.get(f.node) ?? 0;
        const ms = Math.min(f.ms, (s.options.driftMs ?? 2) - used);
        forward.set(f.node, used + ms);
        return { ...f, ms };
      }
      return f;
    });
  return { ...s, faults };
}

/** Scenarios whose faults all stay inside the assumptions: I1–I5 must hold. */
export function safeScenario(
  cfg: { nodes?: readonly number[]; maxClients?: number; maxOps?: number; maxFaults?: number } = {},
): fc.Arbitrary<Scenario> {
  return fc
    .record({
      n: fc.constantFrom(...(cfg.nodes ?? [3, 4, 5])),
      k: fc.integer({ min: 1, max: cfg.maxClients ?? 4 }),
    })
    .chain(({ n, k }) =>
      fc.record({
        seed: fc.integer({ min: 0, max: 0x7fffffff }),
        options: options(),
        nodes: fc.array(nodeSetup(MAX_RATE_ERROR), { minLength: n, maxLength: n }),
        clients: fc.array(client(n, cfg.maxOps ?? 4, 800, MAX_RATE_ERROR), {
          minLength: k,
          maxLength: k,
        }),
        faults: fc.array(rawFault(n, k), { maxLength: cfg.maxFaults ?? 10 }),
        probes: fc.constant(true),
      }),
    )
    .map(constrain);
}

/**
 * Hand-offs at the edge of validity: every client wants "a", holders often
 * extend and then walk away without releasing (so the lock ends exactly at
 * its believed deadline), others wait for it. Clock rates sit at the edges of
 * the allowed error, ttls are long enough for that error to be milliseconds,
 * and some clients are far (slow rounds) while others are near (they take a
 * freed lock within a fraction of a millisecond). This is where an error in
 * the validity arithmetic turns into an overlap.
 */
export function handoffScenario(): fc.Arbitrary<Scenario> {
  // The worst case inside the assumptions: client clocks slow, node clocks fast.
  const slow = 1 - MAX_RATE_ERROR;
  const fastRate = 1 + MAX_RATE_ERROR;
  const clientRate = fc.constantFrom(slow, slow, slow, 1, fastRate);
  const nodeRate = fc.constantFrom(fastRate, fastRate, fastRate, 1, slow);
  return fc
    .record({
      n: fc.constantFrom(3, 5),
      k: fc.integer({ min: 2, max: 4 }),
      ttl: fc.integer({ min: 200, max: 3000 }),
    })
    .chain(({ n, k, ttl }) => {
      const linkOf = (min: number, max: number) =>
        fc.record({
          requestDelay: fc.integer({ min, max }).map((d) => d / 10),
          replyDelay: fc.integer({ min, max }).map((d) => d / 10),
          jitter: fc.integer({ min: 0, max: 10 }).map((d) => d / 10),
        });
      const clientLinks = fc.constantFrom([1, 10] as const, [10, 100] as const).chain(([lo, hi]) =>
        fc.record({
          link: linkOf(lo, hi),
          perNode: fc.array(linkOf(lo, hi), { minLength: n, maxLength: n }),
        }),
      );
      const handoffOp: fc.Arbitrary<Op> = fc
        .record({
          kind: fc.constantFrom('acquire' as const, 'acquire' as const, 'using' as const),
          hold: fc.integer({ min: 0, max: 120 }).map((p) => Math.round((p / 100) * ttl)),
          writes: fc.integer({ min: 1, max: 6 }),
          extendAt: fc.option(fc.integer({ min: 10, max: 95 }), { nil: undefined, freq: 3 }),
          extendTtl: fc.option(
            fc.integer({ min: 20, max: 100 }).map((p) => Math.round((p / 100) * ttl)),
            { nil: undefined },
          ),
          abandon: fc.constantFrom(true, true, false),
          think: fc.integer({ min: 0, max: 30 }),
        })
        .map(
          (o): Op => ({
            kind: o.kind,
            resources: ['a'],
            wait: 3 * ttl + 1000,
            hold: o.hold,
            writes: o.writes,
            think: o.think,
            ...(o.extendAt === undefined || o.kind === 'using'
              ? {}
              : {
                  extend: {
                    at: o.extendAt / 100,
                    ...(o.extendTtl === undefined ? {} : { ttl: o.extendTtl }),
                  },
                }),
            ...(o.abandon && o.kind !== 'using' ? { abandon: true } : {}),
          }),
        );
      return fc.record({
        seed: fc.integer({ min: 0, max: 0x7fffffff }),
        options: fc
          .record({
            nodeTimeout: fc.integer({ min: 10, max: 40 }),
            maxDelay: fc.integer({ min: 2, max: 20 }),
          })
          .map(({ nodeTimeout, maxDelay }) => ({
            ttl,
            nodeTimeout,
            ...DRIFT,
            retry: { minDelay: 1, maxDelay, factor: 2 },
          })),
        nodes: fc.array(
          fc.record({
            clock: fc.record({
              wallOffset: fc
                .integer({ min: -NODE_OFFSET, max: NODE_OFFSET })
                .map((o) => 1.7e12 + o),
              rate: nodeRate,
            }),
          }),
          { minLength: n, maxLength: n },
        ),
        clients: fc.array(
          fc
            .record({
              clock: fc.record({ offset: fc.integer({ min: 0, max: 1000 }), rate: clientRate }),
              links: clientLinks,
              startAt: fc.integer({ min: 0, max: 50 }),
              program: fc.array(handoffOp, { minLength: 2, maxLength: 6 }),
            })
            .map(
              ({ links, ...c }): ClientSetup => ({
                ...c,
                link: links.link,
                links: { ...links.perNode },
              }),
            ),
          { minLength: k, maxLength: k },
        ),
        faults: fc.array(
          fc.record({
            at: fc.integer({ min: 0, max: 3 * ttl }),
            kind: fc.constant('delay' as const),
            node: fc.integer({ min: 0, max: n - 1 }),
            client: fc.integer({ min: 0, max: k - 1 }),
            extra: fc.integer({ min: 1, max: 40 }),
            duration: fc.integer({ min: 1, max: 300 }),
          }),
          { maxLength: 4 },
        ),
        probes: fc.constant(true),
      });
    });
}

/**
 * One client and a majority of healthy nodes (no faults, short links); the
 * minority may suffer anything, even faults outside the assumptions. Every
 * acquisition must then succeed within `budgetOf(scenario)`.
 */
export function livenessScenario(): fc.Arbitrary<Scenario> {
  return fc
    .record({ n: fc.constantFrom(3, 5), seed: fc.integer({ min: 0, max: 0x7fffffff }) })
    .chain(({ n, seed }) => {
      const minority = Math.floor((n - 1) / 2);
      // The client itself stays healthy: its own pauses would count against the budget.
      const minorityFault = rawFault(minority, 1)
        .filter((f) => f.kind !== 'clientPause')
        .map((f): Fault => (f.kind === 'nodeClockStep' ? { ...f, ms: f.ms * 1000 } : f));
      return fc.record({
        seed: fc.constant(seed),
        options: options(),
        nodes: fc.array(nodeSetup(MAX_RATE_ERROR), { minLength: n, maxLength: n }),
        clients: fc.array(
          client(n, 5, 300, MAX_RATE_ERROR, 1).map((c) => ({
            ...c,
            program: c.program.map((o) => {
              const { abandon: _abandon, ...rest } = o;
              return {
                ...rest,
                kind: o.kind === 'try' ? ('acquire' as const) : o.kind,
                wait: 60_000,
              };
            }),
          })),
          { minLength: 1, maxLength: 1 },
        ),
        faults: fc.array(minorityFault, { maxLength: 8 }),
      });
    })
    .map((s) => ({ ...s, livenessBudget: budgetOf(s) }));
}

/**
 * A sharper liveness schedule: one client, minority nodes on faster links
 * than the majority (so they are among the first to answer), and faults on
 * the minority timed to a tenth of a millisecond within the first rounds, so
 * that they land between phase 1 and phase 2 of an acquisition.
 */
export function minorityStallScenario(): fc.Arbitrary<Scenario> {
  return fc
    .record({ n: fc.constantFrom(3, 5), seed: fc.integer({ min: 0, max: 0x7fffffff }) })
    .chain(({ n, seed }) => {
      const m = Math.floor((n - 1) / 2);
      const at = fc.integer({ min: 0, max: 600 }).map((t) => t / 10);
      const node = fc.integer({ min: 0, max: m - 1 });
      const duration = fc.integer({ min: 1, max: 500 });
      const fault: fc.Arbitrary<Fault> = fc.oneof(
        fc.record({ at, kind: fc.constant('pause' as const), node, duration }),
        fc.record({ at, kind: fc.constant('down' as const), node, duration }),
        fc.record({
          at,
          kind: fc.constant('crash' as const),
          node,
          keepData: fc.boolean(),
          restartAfter: duration,
        }),
        fc.record({
          at,
          kind: fc.constant('partition' as const),
          node,
          client: fc.constant(0),
          mode: fc.constantFrom('requests' as const, 'replies' as const, 'both' as const),
          duration,
        }),
      );
      const fastLink = fc.record({
        requestDelay: fc.integer({ min: 1, max: 10 }).map((d) => d / 10),
        replyDelay: fc.integer({ min: 1, max: 10 }).map((d) => d / 10),
        jitter: fc.constant(0),
      });
      return fc.record({
        seed: fc.constant(seed),
        options: options(),
        nodes: fc.array(nodeSetup(MAX_RATE_ERROR), { minLength: n, maxLength: n }),
        clients: fc
          .record({
            link: fc.record({
              requestDelay: fc.integer({ min: 10, max: 30 }).map((d) => d / 10),
              replyDelay: fc.integer({ min: 10, max: 30 }).map((d) => d / 10),
              jitter: fc.constant(0),
            }),
            fast: fc.array(fastLink, { minLength: m, maxLength: m }),
            program: fc.array(
              fc.record({
                kind: fc.constantFrom('acquire' as const, 'using' as const),
                resources,
                wait: fc.constant(60_000),
                hold: fc.integer({ min: 0, max: 50 }),
                writes: fc.integer({ min: 0, max: 2 }),
                think: fc.integer({ min: 0, max: 30 }),
              }),
              { minLength: 1, maxLength: 3 },
            ),
          })
          .map(({ link, fast, program }): ClientSetup[] => [
            { clock: {}, link, links: { ...fast }, startAt: 0, program },
          ]),
        faults: fc.array(fault, { minLength: 1, maxLength: 4 }),
      });
    })
    .map((s) => ({ ...s, livenessBudget: budgetOf(s) }));
}

/** The longest round trip of any client's link to any node, with jitter both ways. */
function maxRttOf(s: Pick<Scenario, 'clients'>): number {
  return Math.max(
    ...s.clients.flatMap((c) =>
      [c.link, ...Object.values(c.links ?? {})].map(
        (l) => l.requestDelay + l.replyDelay + 2 * l.jitter,
      ),
    ),
  );
}

/**
 * I4's budget: two rounds, each up to a node timeout for phase 1 and one for
 * phase 2, with a full backoff between them, plus link round trips.
 */
export function budgetOf(s: Pick<Scenario, 'options' | 'clients'>): number {
  const rtt = maxRttOf(s);
  const maxDelay = s.options.retry?.maxDelay ?? 250;
  return 2 * (2 * s.options.nodeTimeout + maxDelay) + 4 * rtt + 10;
}

/** The assumption a canary breaks. */
export type CanaryKind = 'pause' | 'clock-jump' | 'crash-restart' | 'clock-rate';

/** Every canary kind. */
export const CANARIES: readonly CanaryKind[] = [
  'pause',
  'clock-jump',
  'crash-restart',
  'clock-rate',
];

const canaryBase = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  ttl: fc.integer({ min: 200, max: 600 }),
  nodeTimeout: fc.integer({ min: 10, max: 25 }),
  maxDelay: fc.integer({ min: 5, max: 30 }),
  u: fc.integer({ min: 0, max: 1000 }).map((x) => x / 1000),
  v: fc.integer({ min: 0, max: 1000 }).map((x) => x / 1000),
  nodes: fc.array(nodeSetup(0.0005), { minLength: 3, maxLength: 3 }),
  clocks: fc.array(fc.record({ rate: rate(MAX_RATE_ERROR) }), { minLength: 2, maxLength: 2 }),
});

/**
 * A run that breaks one assumption while client c0 holds "a" and client c1
 * waits for it. c0 gets the lock first (it starts first on fast links), so
 * the fault always lands on a held lock and c1 always gets in while c0 still
 * believes it holds: I1 must fire. Fencing needs none of these assumptions,
 * so I2 and I3 must hold.
 */
export function canaryScenario(kind: CanaryKind): fc.Arbitrary<Scenario> {
  return canaryBase.map(({ seed, ttl, nodeTimeout, maxDelay, u, v, nodes, clocks }) => {
    const drift = ttl * DRIFT.driftFactor + DRIFT.driftMs;
    const fast = { requestDelay: 0.5, replyDelay: 0.5, jitter: 1 };
    // The longest c1 can take to notice a free lock and take it.
    const reaction = maxDelay + 4 * 2 + 2;
    // c1 polls with tryAcquire: a queued waiter sleeps until the holder's key
    // runs out where it saw it, and would miss a key freed early by the fault.
    const waiter: Op = {
      kind: 'try',
      resources: ['a'],
      wait: 0,
      hold: Math.round(0.8 * ttl),
      writes: 8,
      think: 0,
      untilAcquired: true,
    };
    const holder: Op = {
      kind: 'acquire',
      resources: ['a'],
      wait: 1000,
      hold: Math.round(ttl - drift - 5),
      writes: 10,
      think: 0,
      abandon: true,
    };
    const options: ScenarioOptions = {
      ttl,
      nodeTimeout,
      ...DRIFT,
      retry: { minDelay: 2, maxDelay, factor: 2 },
    };
    const c1: ClientSetup = { clock: clocks[1]!, link: fast, startAt: 20, program: [waiter] };
    let c0: ClientSetup = { clock: clocks[0]!, link: fast, startAt: 0, program: [holder] };
    const faults: Fault[] = [];
    switch (kind) {
      case 'pause': {
        // Check validity, stall past it, write: the write lands in c1's hold.
        const lo = reaction + drift + 10;
        const hi = ttl / 2;
        c0 = {
          ...c0,
          program: [{ ...holder, hold: 0, writes: 1, stallPastValidity: lo + u * (hi - lo) }],
        };
        break;
      }
      case 'clock-jump': {
        // Two of three nodes jump forward: c0's keys expire there early.
        const at = 20 + Math.round(u * 0.4 * ttl);
        const ms = Math.round(drift + reaction + 30 + v * (2 * ttl));
        faults.push({ at, kind: 'nodeClockStep', node: 0, ms });
        faults.push({ at, kind: 'nodeClockStep', node: 1, ms });
        break;
      }
      case 'crash-restart': {
        // c0 holds on n0 and n1 only (n2 is cut off from it); n0 comes back empty at once.
        faults.push({
          at: 0,
          kind: 'partition',
          node: 2,
          client: 0,
          mode: 'both',
          duration: ttl,
        });
        const at = 20 + Math.round(u * 0.2 * ttl);
        const restartAfter = nodeClockSpread(10 * ttl, 0.0005) + Math.round(v * 0.2 * ttl);
        faults.push({ at, kind: 'crash', node: 0, keepData: false, restartAfter });
        break;
      }
      case 'clock-rate': {
        // c0's clock runs far slower than driftFactor allows: it believes in its lock too long.
        c0 = { ...c0, clock: { rate: 0.5 + 0.3 * u } };
        break;
      }
    }
    return { seed, options, nodes, clients: [c0, c1], faults };
  });
}

/**
 * Fair waiting (I6): 2–6 clients queue for "a" on healthy nodes and links
 * (clock rates within the assumptions, no faults), hold it briefly, release
 * it or walk away. Every waiter is live, so each must be served in arrival
 * order with no idle gap longer than one hand-over.
 */
export function queueScenario(): fc.Arbitrary<Scenario> {
  const queueOp: fc.Arbitrary<Op> = fc
    .record({
      kind: fc.constantFrom('acquire' as const, 'acquire' as const, 'using' as const),
      hold: fc.integer({ min: 0, max: 150 }),
      writes: fc.integer({ min: 0, max: 2 }),
      abandon: fc.constantFrom(false, false, true),
      think: fc.integer({ min: 0, max: 100 }),
    })
    .map(
      (o): Op => ({
        kind: o.kind,
        resources: ['a'],
        wait: 30_000,
        hold: o.hold,
        writes: o.writes,
        think: o.think,
        ...(o.abandon && o.kind !== 'using' ? { abandon: true } : {}),
      }),
    );
  return fc
    .record({ n: fc.constantFrom(3, 5), k: fc.integer({ min: 2, max: 6 }) })
    .chain(({ n, k }) =>
      fc.record({
        seed: fc.integer({ min: 0, max: 0x7fffffff }),
        options: options(),
        nodes: fc.array(nodeSetup(MAX_RATE_ERROR), { minLength: n, maxLength: n }),
        clients: fc.array(
          fc.record({
            clock: fc.record({
              offset: fc.integer({ min: 0, max: 1_000_000 }),
              rate: rate(MAX_RATE_ERROR),
            }),
            link: link(3),
            startAt: fc.integer({ min: 0, max: 300 }),
            program: fc.array(queueOp, { minLength: 1, maxLength: 4 }),
          }),
          { minLength: k, maxLength: k },
        ),
        faults: fc.constant([] as Fault[]),
        probes: fc.constant(true),
      }),
    )
    .map((s) => {
      // Healthy links answer within the node timeout: a round trip longer than
      // it times rounds out, and three such rounds in a row end a wait with a
      // QuorumError (outside I6's assumptions).
      const nodeTimeout = Math.max(s.options.nodeTimeout, Math.ceil(maxRttOf(s)) + 1);
      const t = { ...s, options: { ...s.options, nodeTimeout } };
      return { ...t, fairness: fairnessOf(t) };
    });
}

/**
 * I6's bounds. A waiter is queued on every node once its first request and
 * the round that agrees on its ticket have landed. The resource stays free
 * at most one hand-over: a holder that walks away keeps its keys past its
 * believed validity by the drift allowance, the round's own time and the
 * clocks' rate error; the waiter's timer fires when the key runs out where
 * it read it, at its next refresh, or when a turn notice arrives (a quorum of
 * them, or the first and a short wait); then one claim round with its fence
 * phase 2.
 */
export function fairnessOf(s: Pick<Scenario, 'options' | 'clients'>): {
  after: number;
  gap: number;
} {
  const rtt = maxRttOf(s);
  const nt = s.options.nodeTimeout;
  const ttl = maxTtlOf(s);
  const driftFactor = s.options.driftFactor ?? DRIFT.driftFactor;
  const driftMs = s.options.driftMs ?? DRIFT.driftMs;
  const outlives = ttl * (driftFactor + 4 * MAX_RATE_ERROR) + driftMs + nt + rtt;
  const handOver = Math.min(25, nt) + 2 * nt + 4 * rtt + 2;
  // A hold that ends by running out (not by a release) hands no turn and sends
  // no notice: a waiter that did not see that holder's key last time it looked
  // learns it at its next refresh.
  return {
    after: 2 * nt + 3 * rtt + 1,
    gap: Math.ceil(outlives + handOver + QUEUE_REFRESH_MS * (1 + MAX_RATE_ERROR)),
  };
}

/**
 * Fence tokens across lost data and expired counters: clients take "a" one
 * after another on three nodes whose wall clocks agree with the clients' to
 * within a couple of seconds (so fresh counters are seeded sometimes from a
 * client's proposal, sometimes from TIME); nodes crash and come back empty
 * (after the assumptions' floor), and a pause longer than the counters'
 * retention lets every counter expire before it is seeded again. I2 and I3:
 * each holder's token exceeds every token issued before.
 */
export function fenceScenario(): fc.Arbitrary<Scenario> {
  const fenceOp: fc.Arbitrary<Op> = fc
    .record({
      hold: fc.integer({ min: 0, max: 100 }),
      think: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 0, max: 400 }) },
        // Longer than the fence retention (1 h): every counter expires meanwhile.
        { weight: 1, arbitrary: fc.integer({ min: 3_600_001, max: 3_700_000 }) },
      ),
    })
    .map(
      (o): Op => ({
        kind: 'acquire',
        resources: ['a'],
        wait: 5_000,
        hold: o.hold,
        writes: 1,
        think: o.think,
      }),
    );
  return fc
    .record({
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
      options: options(),
      nodes: fc.array(nodeSetup(MAX_RATE_ERROR), { minLength: 3, maxLength: 3 }),
      clients: fc.array(
        fc.record({
          // Wall clocks from 2 s behind to 1 s ahead of the nodes: proposals taken and refused.
          clock: fc.record({
            wallOffset: fc.integer({ min: -2000, max: 1000 }).map((o) => 1.7e12 + o),
            rate: rate(MAX_RATE_ERROR),
          }),
          link: link(3),
          startAt: fc.integer({ min: 0, max: 100 }),
          program: fc.array(fenceOp, { minLength: 1, maxLength: 5 }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
      faults: fc.array(
        fc.record({
          at: fc.integer({ min: 0, max: 2000 }),
          kind: fc.constant('crash' as const),
          node: fc.integer({ min: 0, max: 2 }),
          keepData: fc.constant(false),
          restartAfter: fc.integer({ min: 1, max: 1500 }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
      probes: fc.constant(true),
    })
    .map(constrain);
}
