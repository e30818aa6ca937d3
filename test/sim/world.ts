/**
 * One simulated run: N SimServers, several client processes each running a
 * Redlock (the real library, through `Redlock.fromNodes`) on its own clock, a
 * program of lock operations per client, and a schedule of faults. Everything
 * runs on the Scheduler's true timeline, so a Scenario (plain data that
 * fast-check generates and shrinks) always replays to the same history.
 */
import { sleep } from '../../src/clock.js';
import { LockError } from '../../src/errors.js';
import type { Lock } from '../../src/lock.js';
import type { RedlockOptions } from '../../src/options.js';
import { Redlock } from '../../src/redis/redlock.js';
import {
  type Acquisition,
  check,
  emptyHistory,
  FencedStore,
  type History,
  type Violation,
} from './checker.js';
import { type ClockSpec, Scheduler, SimClock } from './clock.js';
import { type LinkSpec, type Partition, SimServer } from './node.js';
import { seeded, withMathRandom, withRandomBytes } from './random.js';

/** A Redis node of a scenario. */
export interface NodeSetup {
  readonly clock: ClockSpec;
}

/** One lock operation of a client's program. Durations are ms on the client's clock. */
export interface Op {
  /** `acquire` waits up to `wait`; `try` is tryAcquire; `using` renews while holding. */
  readonly kind: 'acquire' | 'try' | 'using';
  readonly resources: readonly string[];
  /** Per-acquisition ttl; the instance's ttl when absent. */
  readonly ttl?: number;
  readonly wait: number;
  /** How long the client keeps the lock before releasing it. */
  readonly hold: number;
  /** Writes to the fenced store, evenly spread over the hold, the first at once. */
  readonly writes: number;
  /** One explicit extend at `at` × hold (not for `using`, which renews by itself). */
  readonly extend?: { readonly at: number; readonly ttl?: number };
  /** Walk away without releasing (the lock runs out on its own). Not for `using`. */
  readonly abandon?: boolean;
  /** Pause after the operation. */
  readonly think: number;
  /**
   * Canary: at its first write the client checks `remaining() > 0`, then its
   * process stalls for the remaining validity plus this many ms, then writes.
   */
  readonly stallPastValidity?: number;
  /** Retry the operation after a failure until it gets the lock (bounded: 20 tries, 500 for `try`). */
  readonly untilAcquired?: boolean;
}

/** A client process of a scenario. */
export interface ClientSetup {
  readonly clock: ClockSpec;
  /** Its link to every node. */
  readonly link: LinkSpec;
  /** Per-node links that differ from `link`, by node index. */
  readonly links?: Readonly<Record<number, LinkSpec>>;
  /** True time at which its program starts. */
  readonly startAt: number;
  readonly program: readonly Op[];
}

/** A fault injected at true time `at`. Nodes and clients are indexes. */
export type Fault =
  | { readonly at: number; readonly kind: 'down'; readonly node: number; readonly duration: number }
  | {
      readonly at: number;
      readonly kind: 'crash';
      readonly node: number;
      readonly keepData: boolean;
      readonly restartAfter: number;
    }
  | {
      readonly at: number;
      readonly kind: 'pause';
      readonly node: number;
      readonly duration: number;
    }
  | {
      readonly at: number;
      readonly kind: 'partition';
      readonly node: number;
      readonly client: number;
      readonly mode: Exclude<Partition, 'none'>;
      readonly duration: number;
    }
  | {
      readonly at: number;
      readonly kind: 'delay';
      readonly node: number;
      readonly client: number;
      readonly extra: number;
      readonly duration: number;
    }
  | {
      readonly at: number;
      readonly kind: 'reorder';
      readonly node: number;
      readonly client: number;
      readonly duration: number;
    }
  | {
      readonly at: number;
      readonly kind: 'nodeClockStep';
      readonly node: number;
      readonly ms: number;
    }
  | {
      readonly at: number;
      readonly kind: 'nodeClockRate';
      readonly node: number;
      readonly rate: number;
    }
  | {
      readonly at: number;
      readonly kind: 'clientPause';
      readonly client: number;
      readonly duration: number;
    }
  | {
      readonly at: number;
      readonly kind: 'clientWallStep';
      readonly client: number;
      readonly ms: number;
    };

/** Instance options of every client; ttl and nodeTimeout are always explicit in scenarios. */
export type ScenarioOptions = RedlockOptions & {
  readonly ttl: number;
  readonly nodeTimeout: number;
};

/** Everything that defines a run. Plain data: print it, store it, replay it. */
export interface Scenario {
  /** Seeds link jitter and the library's Math.random. */
  readonly seed: number;
  readonly options: ScenarioOptions;
  readonly nodes: readonly NodeSetup[];
  readonly clients: readonly ClientSetup[];
  readonly faults: readonly Fault[];
  /** I4: every acquisition of the run must succeed within this many ms of true time. */
  readonly livenessBudget?: number;
  /** I5: look for leftovers of failed rounds once they have settled. */
  readonly probes?: boolean;
  /**
   * I6: every waiting acquisition (`acquire` or `using` with a wait) of a
   * client that is never paused is queued within `after` ms and never sees
   * the resource free for longer than `gap` ms.
   */
  readonly fairness?: { readonly after: number; readonly gap: number };
}

/** What a run produced. */
export interface RunResult {
  readonly history: History;
  readonly violations: Violation[];
  /** Things that are wrong whatever the invariants say: hangs, unexpected errors. */
  readonly problems: string[];
  readonly stats: {
    readonly events: number;
    readonly trueMs: number;
    readonly acquisitions: number;
    readonly acquired: number;
    /** Faults applied, by kind (crashes split by whether data survived). */
    readonly faults: Record<string, number>;
    /** Failed acquisitions by error code. */
    readonly errors: Record<string, number>;
  };
}

interface Tracked {
  readonly acq: Acquisition;
  readonly lock: Lock;
  readonly clock: SimClock;
  last: number;
  readonly readings: Array<{ at: number; reading: number }>;
}

interface ClientCtx {
  readonly index: number;
  readonly id: string;
  readonly setup: ClientSetup;
  readonly clock: SimClock;
  readonly redlock: Redlock;
  /** Prefixes of the acquisition in progress, seen in its acquire requests. */
  prefixes: Set<string> | undefined;
  finished: boolean;
  opIndex: number;
}

/** How many times an operation is tried. */
function attemptsOf(op: Op): number {
  if (!op.untilAcquired) return 1;
  return op.kind === 'try' ? 500 : 20;
}

/** Longest a fault keeps something away, for the settle windows. */
function longestFault(s: Scenario): number {
  let m = 0;
  for (const f of s.faults) {
    if ('duration' in f) m = Math.max(m, f.duration + ('extra' in f ? f.extra : 0));
    if (f.kind === 'crash') m = Math.max(m, f.restartAfter);
  }
  return m;
}

/** An upper bound on how long the programs can take, so a hang is told apart from a slow run. */
export function horizonOf(s: Scenario): number {
  const ttl = s.options.ttl;
  const nt = s.options.nodeTimeout;
  let end = 0;
  for (const c of s.clients) {
    let t = c.startAt;
    for (const op of c.program) {
      const opTtl = op.ttl ?? ttl;
      const attempts = attemptsOf(op);
      t += attempts * (op.wait + 20 * nt + 4 * opTtl) + op.hold + op.think;
      t += op.stallPastValidity === undefined ? 0 : op.stallPastValidity + 2 * opTtl;
    }
    end = Math.max(end, t);
  }
  const faultsEnd = Math.max(0, ...s.faults.map((f) => f.at));
  return Math.max(end, faultsEnd) + longestFault(s) + 10 * ttl + 5_000;
}

/** Runs a scenario to completion and checks its history. */
export async function runScenario(s: Scenario): Promise<RunResult> {
  return withMathRandom(seeded(s.seed), () =>
    withRandomBytes(seeded((s.seed ^ 0x27d4eb2f) >>> 0), () => run(s)),
  );
}

async function run(s: Scenario): Promise<RunResult> {
  const sched = new Scheduler();
  const net = seeded((s.seed ^ 0x5bd1e995) >>> 0);
  const servers = s.nodes.map((n, i) => new SimServer(sched, `n${i}`, n.clock, net));
  const history = emptyHistory();
  const store = new FencedStore(history.writes);
  const problems: string[] = [];
  const faultCount: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const tracked = new Set<Tracked>();
  const finalized: Tracked[] = [];
  const nt = s.options.nodeTimeout;
  const maxLinkDelay = Math.max(
    0,
    ...s.clients.flatMap((c) =>
      [c.link, ...Object.values(c.links ?? {})].map(
        (l) => Math.max(l.requestDelay, l.replyDelay) + l.jitter,
      ),
    ),
  );
  // A failed round's releases are all sent by nodeTimeout after it ends and arrive
  // within one link delay; faults that end shortly before the acquisition can
  // still hold messages back, hence the look-back window.
  const settle = nt + maxLinkDelay + 1;
  const lookBack = longestFault(s) + nt + maxLinkDelay;

  const clients: ClientCtx[] = s.clients.map((setup, index) => {
    const id = `c${index}`;
    const clock = new SimClock(sched, id, setup.clock);
    const nodes = servers.map((srv, i) => srv.connect(id, setup.links?.[i] ?? setup.link));
    const redlock = Redlock.fromNodes(nodes, s.options, clock);
    return { index, id, setup, clock, redlock, prefixes: undefined, finished: false, opIndex: 0 };
  });
  for (const srv of servers) {
    if (process.env.SIM_TRACE) {
      srv.trace = (line) => console.log(`${sched.now.toFixed(3)} ${srv.id} ${line}`);
    }
    srv.onAcquireSent = (client, req) => {
      clients.find((c) => c.id === client)?.prefixes?.add(req.prefix);
    };
  }

  const onUnhandled = (reason: unknown) => {
    problems.push(`unhandled rejection: ${describe(reason)}`);
  };
  process.on('unhandledRejection', onUnhandled);

  sched.afterEvent.push(() => {
    for (const t of tracked) {
      const reading = t.clock.now() + t.lock.remaining();
      if (Math.abs(reading - t.last) > 1e-7) {
        t.readings.push({ at: sched.now, reading });
        t.last = reading;
      }
      if (t.acq.releasedAt !== null || !t.lock.held) tracked.delete(t);
    }
  });

  const count = (kind: string) => {
    faultCount[kind] = (faultCount[kind] ?? 0) + 1;
  };
  const pauseClient = (c: ClientCtx, ms: number) => {
    sched.pause(c.id);
    for (const srv of servers) srv.disturbClient(c.id);
    sched.after(ms, 'world', () => {
      sched.resume(c.id);
      for (const srv of servers) srv.disturbClient(c.id);
    });
  };

  for (const f of s.faults) {
    sched.at(f.at, 'world', () => {
      if (process.env.SIM_TRACE) console.log(`${sched.now.toFixed(3)} fault ${JSON.stringify(f)}`);
      const srv = 'node' in f ? servers[f.node] : undefined;
      const c = 'client' in f ? clients[f.client] : undefined;
      if (('node' in f && !srv) || ('client' in f && !c)) return;
      switch (f.kind) {
        // A node that is already down stays down until the fault that took it
        // down restarts it: an early restart would bring back an empty node
        // before its keys could have expired, outside the assumptions.
        case 'down':
          if (!srv!.up) break;
          count('down');
          srv!.crash(true);
          sched.after(f.duration, 'world', () => srv!.restart());
          break;
        case 'crash':
          if (!srv!.up) break;
          count(f.keepData ? 'crash (data kept)' : 'crash (data lost)');
          srv!.crash(f.keepData);
          sched.after(f.restartAfter, 'world', () => srv!.restart());
          break;
        case 'pause':
          count('node pause');
          srv!.pause();
          sched.after(f.duration, 'world', () => srv!.resume());
          break;
        case 'partition':
          count(`partition (${f.mode})`);
          srv!.partition(c!.id, f.mode);
          sched.after(f.duration, 'world', () => srv!.partition(c!.id, 'none'));
          break;
        case 'delay':
          count('link delay');
          srv!.setExtraDelay(c!.id, f.extra);
          sched.after(f.duration, 'world', () => srv!.setExtraDelay(c!.id, 0));
          break;
        case 'reorder':
          count('reordered replies');
          srv!.setReorder(c!.id, true);
          sched.after(f.duration, 'world', () => srv!.setReorder(c!.id, false));
          break;
        case 'nodeClockStep':
          count(Math.abs(f.ms) > (s.options.driftMs ?? 2) ? 'node clock jump' : 'node clock step');
          srv!.clock.stepWall(f.ms);
          break;
        case 'nodeClockRate':
          count('node clock rate');
          srv!.clock.setRate(f.rate);
          break;
        case 'clientPause':
          count('client pause');
          pauseClient(c!, f.duration);
          break;
        case 'clientWallStep':
          count('client wall step');
          c!.clock.stepWall(f.ms);
          break;
      }
    });
  }

  let acqSeq = 0;
  const begin = (c: ClientCtx, op: Op): Acquisition => {
    const acq: Acquisition = {
      id: `${c.id}#${acqSeq++}`,
      client: c.id,
      resources: op.resources,
      startedAt: sched.now,
      okAt: null,
      endedAt: null,
      fences: {},
      deadlines: [],
      releasedAt: null,
      uses: [],
    };
    history.acquisitions.push(acq);
    if (s.livenessBudget !== undefined) {
      history.liveness.push({ acquisition: acq.id, budget: s.livenessBudget });
    }
    const live = !s.faults.some((f) => f.kind === 'clientPause' && f.client === c.index);
    if (s.fairness && live && op.kind !== 'try' && op.wait > 0) {
      history.fairness.push({ acquisition: acq.id, ...s.fairness });
    }
    c.prefixes = new Set();
    return acq;
  };

  const ended = (c: ClientCtx, acq: Acquisition, lock: Lock | null) => {
    acq.endedAt = sched.now;
    const prefixes = c.prefixes ?? new Set<string>();
    c.prefixes = undefined;
    if (!s.probes) return;
    const own = lock?.value;
    sched.after(settle, 'world', () => {
      for (const srv of servers) {
        const leftovers = srv
          .liveLockEntries()
          .map((e) => e.value)
          .filter((v) => v !== own && [...prefixes].some((p) => v.startsWith(`${p}.`)));
        history.probes.push({
          at: sched.now,
          node: srv.id,
          acquisition: acq.id,
          reachable: srv.reachableSince(c.id, acq.startedAt - lookBack),
          leftovers,
        });
      }
    });
  };

  const granted = (c: ClientCtx, acq: Acquisition, lock: Lock) => {
    acq.okAt = sched.now;
    // docs/architecture.md, "Acquire round" step 3: a lock is never returned already expired.
    if (lock.remaining() <= 0)
      problems.push(`${acq.id}: acquire returned a lock with no validity left`);
    acq.fences = { ...lock.fences };
    const reading = c.clock.now() + lock.remaining();
    const t: Tracked = { acq, lock, clock: c.clock, last: reading, readings: [] };
    t.readings.push({ at: sched.now, reading });
    tracked.add(t);
    finalized.push(t);
    ended(c, acq, lock);
  };

  const failed = (c: ClientCtx, acq: Acquisition, err: unknown) => {
    const code = err instanceof LockError ? err.code : 'unexpected';
    errors[code] = (errors[code] ?? 0) + 1;
    if (!(err instanceof LockError)) problems.push(`${acq.id}: unexpected error ${describe(err)}`);
    ended(c, acq, null);
  };

  /** The client process stops running until `ms` of true time have passed. */
  const stall = (c: ClientCtx, ms: number) =>
    new Promise<void>((resolve) => {
      pauseClient(c, ms);
      sched.after(0, c.id, resolve);
    });

  const use = async (c: ClientCtx, acq: Acquisition, lock: Lock, op: Op, first: boolean) => {
    // Act on the lock only while the client believes it valid.
    if (lock.remaining() <= 0) return;
    if (first && op.stallPastValidity !== undefined) {
      await stall(c, Math.max(0, lock.remaining()) + op.stallPastValidity);
    }
    for (const r of op.resources) {
      const token = lock.fences[r];
      if (token === undefined) continue;
      store.write(sched.now, r, token, acq.id);
      acq.uses.push({ at: sched.now, resource: r });
    }
  };

  const hold = async (c: ClientCtx, acq: Acquisition, lock: Lock, op: Op, signal?: AbortSignal) => {
    const actions: Array<{ at: number; kind: 'write' | 'extend' }> = [];
    for (let k = 0; k < op.writes; k++)
      actions.push({ at: (op.hold * k) / op.writes, kind: 'write' });
    if (op.extend && op.kind !== 'using')
      actions.push({ at: op.hold * op.extend.at, kind: 'extend' });
    actions.sort((a, b) => a.at - b.at);
    const start = c.clock.now();
    let first = true;
    for (const a of actions) {
      const wait = start + a.at - c.clock.now();
      if (wait > 0) await sleep(c.clock, wait);
      if (signal?.aborted) return;
      if (a.kind === 'write') {
        await use(c, acq, lock, op, first);
        first = false;
      } else {
        await lock.extend(op.extend?.ttl).catch((err: unknown) => {
          if (!(err instanceof LockError))
            problems.push(`${acq.id}: extend failed with ${describe(err)}`);
        });
      }
    }
    const rest = start + op.hold - c.clock.now();
    if (rest > 0 && !signal?.aborted) await sleep(c.clock, rest);
  };

  const runOp = async (c: ClientCtx, op: Op) => {
    const opts = { ...(op.ttl === undefined ? {} : { ttl: op.ttl }), wait: op.wait };
    for (let attempt = 0; attempt < attemptsOf(op); attempt++) {
      const acq = begin(c, op);
      try {
        if (op.kind === 'using') {
          await c.redlock.using(op.resources, opts, async (signal, lock) => {
            granted(c, acq, lock);
            await hold(c, acq, lock, op, signal);
            // using() releases as soon as the routine returns.
            acq.releasedAt = sched.now;
          });
          return;
        }
        const lock =
          op.kind === 'try'
            ? await c.redlock.tryAcquire(op.resources, opts)
            : await c.redlock.acquire(op.resources, opts);
        if (!lock) {
          errors.null = (errors.null ?? 0) + 1;
          ended(c, acq, null);
        } else {
          granted(c, acq, lock);
          await hold(c, acq, lock, op);
          if (!op.abandon) {
            acq.releasedAt = sched.now;
            await lock.release().catch((err: unknown) => {
              if (!(err instanceof LockError))
                problems.push(`${acq.id}: release failed with ${describe(err)}`);
            });
          }
          return;
        }
      } catch (err) {
        if (acq.endedAt === null) failed(c, acq, err);
        else problems.push(`${acq.id}: ${describe(err)}`);
      }
      await sleep(c.clock, s.options.retry?.maxDelay ?? 10);
    }
  };

  for (const c of clients) {
    sched.at(c.setup.startAt, c.id, () => {
      void (async () => {
        for (const op of c.setup.program) {
          await runOp(c, op);
          c.opIndex++;
          if (op.think > 0) await sleep(c.clock, op.think);
        }
        c.finished = true;
      })().catch((err: unknown) => problems.push(`${c.id} program crashed: ${describe(err)}`));
    });
  }

  const horizon = horizonOf(s);
  try {
    const end = await sched.run({
      until: horizon,
      maxEvents: 2_000_000,
      done: () => clients.every((c) => c.finished),
    });
    if (end !== 'done') {
      for (const c of clients) {
        if (!c.finished)
          problems.push(
            `${c.id} did not finish op ${c.opIndex} by true time ${sched.now.toFixed(0)} (${end})`,
          );
      }
    }
    // Wind down: closing stops renewals; then let late replies and probes land.
    sched.at(sched.now, 'world', () => {
      for (const c of clients) void c.redlock.close();
    });
    await sched.run({ until: sched.now + 10 * s.options.ttl + 10_000, maxEvents: 200_000 });
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  // Footprint: nothing the library leaves on a node lives forever.
  for (const srv of servers) {
    for (const k of srv.keyspace()) {
      if (k.pttl < 0) problems.push(`${srv.id} keeps ${k.key} without an expiry`);
    }
  }

  for (const t of finalized) {
    t.acq.deadlines = t.readings.map(({ at, reading }) => ({
      at,
      until: t.clock.trueTimeOf(reading),
    }));
  }
  const violations = check(history);
  return {
    history,
    violations,
    problems,
    stats: {
      events: sched.events,
      trueMs: sched.now,
      acquisitions: history.acquisitions.length,
      acquired: history.acquisitions.filter((a) => a.okAt !== null).length,
      faults: faultCount,
      errors,
    },
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
