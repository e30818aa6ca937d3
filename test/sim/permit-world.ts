/**
 * Semaphores and read-write locks in the simulation (test/sim/permit-server.ts
 * runs permits.lua's logic): independent clients on their own clocks, nodes
 * whose clocks run within the drift allowance, random message delays, nodes
 * paused and resumed (their late answers included), nodes that crash and come
 * back empty after the ttl. On the true timeline, a permit counts from the
 * moment acquire resolved until release was called or its validity ended,
 * whichever is first. Used by test/sim/permits.test.ts and the soak.
 */
import fc from 'fast-check';
import type { Lock } from '../../src/lock.js';
import type { RedlockOptions } from '../../src/options.js';
import type { PermitSource } from '../../src/redis/permits.js';
import { Redlock } from '../../src/redis/redlock.js';
import { Scheduler, SimClock } from './clock.js';
import { PermitServer } from './permit-server.js';
import { seeded, withMathRandom } from './random.js';

export type Kind = 'permit' | 'read' | 'write';

export interface Op {
  readonly kind: Kind;
  readonly wait: number;
  readonly hold: number;
  readonly think: number;
}

export interface PermitScenario {
  readonly seed: number;
  readonly nodes: number;
  readonly limit: number;
  readonly ttl: number;
  readonly nodeTimeout: number;
  readonly rates: readonly number[];
  readonly maxDelay: number;
  /** False: requests and replies may overtake earlier ones (resent after a redirect). */
  readonly inOrder: boolean;
  readonly pauses: ReadonlyArray<{ node: number; at: number; length: number }>;
  /**
   * Nodes that crash and come back empty, as docs/safety.md §2 and §6 allow:
   * only after every permit they held has expired and long enough for a fresh
   * fence counter to start above every token issued before.
   */
  readonly restarts?: ReadonlyArray<{ node: number; at: number; extra: number }>;
  readonly clients: ReadonlyArray<readonly Op[]>;
  /** Canary: wipe a majority of nodes at this true time (breaks §6's assumption). */
  readonly wipeAt?: number;
}

export interface Held {
  readonly client: number;
  readonly kind: Kind;
  readonly start: number;
  end: number;
  readonly fence: number;
}

const ops = (kinds: readonly Kind[], ttl: number) =>
  fc.array(
    fc.record({
      kind: fc.constantFrom(...kinds),
      wait: fc.constantFrom(0, 2_000, 2_000),
      hold: fc.integer({ min: 0, max: Math.round(ttl * 1.5) }),
      think: fc.integer({ min: 0, max: 50 }),
    }),
    { minLength: 1, maxLength: 4 },
  );

export function permitScenario(kinds: readonly Kind[]): fc.Arbitrary<PermitScenario> {
  return fc
    .record({
      seed: fc.integer(),
      nodes: fc.constantFrom(3, 3, 5),
      limit: fc.integer({ min: 1, max: 3 }),
      ttl: fc.integer({ min: 150, max: 500 }),
      nodeTimeout: fc.integer({ min: 8, max: 30 }),
      rates: fc.array(fc.integer({ min: -400, max: 400 }), { minLength: 5, maxLength: 5 }),
      maxDelay: fc.integer({ min: 1, max: 8 }),
      inOrder: fc.constantFrom(true, true, false),
      pauses: fc.array(
        fc.record({
          node: fc.integer({ min: 0, max: 4 }),
          at: fc.integer({ min: 0, max: 1_500 }),
          length: fc.integer({ min: 1, max: 800 }),
        }),
        { maxLength: 3 },
      ),
      restarts: fc.array(
        fc.record({
          node: fc.integer({ min: 0, max: 4 }),
          at: fc.integer({ min: 0, max: 1_500 }),
          extra: fc.integer({ min: 0, max: 300 }),
        }),
        { maxLength: 2 },
      ),
      clientCount: fc.integer({ min: 2, max: 6 }),
    })
    .chain(({ clientCount, rates, ...s }) =>
      fc
        .array(ops(kinds, s.ttl), { minLength: clientCount, maxLength: clientCount })
        .map((clients) => ({
          ...s,
          rates: rates.map((r) => 1 + r / 1e5),
          clients,
        })),
    );
}

/** Runs a scenario to its end; returns every permit held, on the true timeline. */
export async function runPermits(s: PermitScenario): Promise<{ held: Held[]; events: number }> {
  const random = seeded(s.seed);
  return withMathRandom(random, async () => {
    const sched = new Scheduler();
    const servers = Array.from(
      { length: s.nodes },
      (_, i) => new PermitServer(sched, `n${i}`, 1.7e12 + random.int(20), s.rates[i]!),
    );
    for (const p of s.pauses) {
      const server = servers[p.node % s.nodes]!;
      sched.at(p.at, 'faults', () => sched.pause(server.id));
      sched.at(p.at + p.length, 'faults', () => sched.resume(server.id));
    }
    for (const r of s.restarts ?? []) {
      const server = servers[r.node % s.nodes]!;
      // Down longer than the ttl on every clock (rates within 0.4%) and the
      // drift allowance, and, for the fence counter it lost, longer than the
      // node clocks differ (20 ms apart, 0.8% of a few seconds) plus 1 s
      // (docs/safety.md §6, restart condition 3).
      const down = Math.max(Math.ceil(s.ttl * 1.01) + 2, 1_100) + r.extra;
      sched.at(r.at, 'faults', () => server.crash());
      sched.at(r.at + down, 'faults', () => server.restart());
    }
    if (s.wipeAt !== undefined) {
      sched.at(s.wipeAt, 'faults', () => {
        for (const server of servers.slice(0, Math.floor(s.nodes / 2) + 1)) server.wipe();
      });
    }
    const options: RedlockOptions = {
      ttl: s.ttl,
      nodeTimeout: s.nodeTimeout,
      driftFactor: 0.01,
      driftMs: 2,
      retry: { minDelay: 5, maxDelay: 40, factor: 2 },
    };
    const held: Held[] = [];
    let running = s.clients.length;
    s.clients.forEach((program, c) => {
      const name = `c${c}`;
      const clock = new SimClock(sched, name, { offset: random.int(1000) });
      const links = servers.map((server) =>
        server.connect(name, () => random.between(0.1, s.maxDelay), s.inOrder),
      );
      const redlock = Redlock.fromNodes(links, options, clock);
      const semaphore = redlock.semaphore('sem', { limit: s.limit });
      const rw = redlock.readWriteLock('rw');
      const sources: Record<Kind, PermitSource> = {
        permit: semaphore,
        read: rw.read,
        write: rw.write,
      };
      const pause = (ms: number) => new Promise<void>((resolve) => clock.setTimer(resolve, ms));
      sched.at(random.int(20), name, async () => {
        for (const op of program) {
          let permit: Lock | null = null;
          try {
            permit = await sources[op.kind].tryAcquire({ wait: op.wait });
          } catch {
            // A round that could not reach a quorum (paused nodes): the next op goes on.
          }
          if (permit) {
            const h: Held = {
              client: c,
              kind: op.kind,
              start: sched.now,
              end: clock.trueTimeOf(clock.now() + permit.remaining()),
              fence: permit.fence!,
            };
            held.push(h);
            if (process.env.SIM_TRACE) {
              console.log(
                `${sched.now.toFixed(3)} held c${c} ${permit.value} ${JSON.stringify(h)}`,
              );
            }
            await pause(op.hold);
            h.end = Math.min(h.end, sched.now);
            await permit.release().catch(() => {});
          }
          await pause(op.think);
        }
        running--;
      });
    });
    await sched.run({ done: () => running === 0, until: 120_000 });
    if (running !== 0)
      throw new Error(`${running} clients still running after 120 s of simulated time`);
    return { held, events: sched.events };
  });
}

/** The most permits held at one moment of the true timeline. */
export function mostAtOnce(held: readonly Held[]): number {
  const edges = held.flatMap((h) =>
    h.end > h.start ? [[h.start, 1] as const, [h.end, -1] as const] : [],
  );
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of edges) {
    now += d;
    most = Math.max(most, now);
  }
  return most;
}

/** Pairs of permits that overlap while one of them is a writer. */
export function writerOverlaps(held: readonly Held[]): string[] {
  const found: string[] = [];
  for (const w of held.filter((h) => h.kind === 'write')) {
    for (const h of held) {
      if (h !== w && h.start < w.end && w.start < h.end) {
        found.push(
          `writer c${w.client} [${w.start}, ${w.end}) beside ${h.kind} c${h.client} [${h.start}, ${h.end})`,
        );
      }
    }
  }
  return found;
}

/** A writer's token is above every token acquired before it and below every one after. */
export function fenceDisorder(held: readonly Held[]): string[] {
  const found: string[] = [];
  for (const w of held.filter((h) => h.kind === 'write')) {
    for (const h of held) {
      if (h === w) continue;
      if ((h.start < w.start && h.fence >= w.fence) || (h.start > w.start && h.fence <= w.fence)) {
        found.push(
          `writer c${w.client} at ${w.start} fence ${w.fence}, ${h.kind} c${h.client} at ${h.start} fence ${h.fence}`,
        );
      }
    }
  }
  return found;
}
