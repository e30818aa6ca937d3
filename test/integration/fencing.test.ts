/**
 * Fencing tokens on real Redis (docs/safety.md): a token is larger than the
 * token of every acquisition that completed before it began, whichever
 * minority of nodes is paused, down or wiped, and the guard turns that into
 * "a stale holder's late write is rejected".
 */
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Lock, QuorumError, Redlock, type RedlockOptions } from '../../src/index.js';
import { fencedSet, highestFence } from '../../src/redis/guard.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

const PREFIX = 'quorumlock:';
const lockKeyOf = (r: string) => `${PREFIX}{${r}}`;
const fenceKeyOf = (r: string) => `${PREFIX}{${r}}:fence`;

/** One completed acquisition, timed on this process's monotonic clock. */
interface Acquisition {
  readonly client: number;
  readonly startedAt: number;
  readonly completedAt: number;
  readonly token: number;
}

/** Every pair (X completed before Y began) where Y's token is not above X's. */
function orderViolations(history: readonly Acquisition[]): string[] {
  const bad: string[] = [];
  for (const x of history) {
    for (const y of history) {
      if (x.completedAt < y.startedAt && !(y.token > x.token)) {
        bad.push(`token ${y.token} began after token ${x.token} had completed`);
      }
    }
  }
  return bad;
}

const ensembles: Ensemble[] = [];
const redlocks: Redlock[] = [];
const clients: Redis[] = [];

async function ensemble(size: number, opts: { appendonly?: boolean } = {}): Promise<Ensemble> {
  const e = await startEnsemble({ size, args: ['--maxmemory-policy', 'noeviction'], ...opts });
  ensembles.push(e);
  return e;
}

function redlock(e: Ensemble, options: RedlockOptions = {}): Redlock {
  const r = new Redlock(e.urls, { ttl: 5_000, nodeTimeout: 1_000, ...options });
  redlocks.push(r);
  return r;
}

const cached = new Map<string, Redis>();

/** A plain client to one node, reused; it reconnects by itself after a restart. */
function client(e: Ensemble, node: number): Redis {
  const url = e.urls[node]!;
  let c = cached.get(url);
  if (!c) {
    c = e.nodes[node]!.client();
    c.on('error', () => {});
    cached.set(url, c);
    clients.push(c);
  }
  return c;
}

/** Waits until `rl` reads `resource` on every node: a restarted node has been reconnected. */
async function allReachable(rl: Redlock, resource: string): Promise<void> {
  for (let i = 0; ; i++) {
    const state = await rl.inspect(resource);
    if (state.nodes.every((n) => n.error === undefined)) return;
    if (i > 200) throw new Error(`nodes still unreachable: ${JSON.stringify(state.nodes)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The fence counters of `resource`, node by node. */
async function counters(e: Ensemble, resource: string): Promise<(number | null)[]> {
  return Promise.all(
    e.nodes.map(async (_, i) => {
      const v = await client(e, i).get(fenceKeyOf(resource));
      return v === null ? null : Number(v);
    }),
  );
}

afterAll(async () => {
  await Promise.all(redlocks.map((r) => r.close().catch(() => {})));
  for (const c of clients) c.disconnect();
  await Promise.all(ensembles.map((e) => e.stop()));
});

describe('phase 2 (counters driven apart)', () => {
  let e: Ensemble;
  let rl: Redlock;
  let node: Redis[];

  beforeAll(async () => {
    e = await ensemble(3);
    rl = redlock(e);
    node = [0, 1, 2].map((i) => client(e, i));
  });

  it('keeps tokens increasing when acquisitions land on different majorities', async () => {
    const resource = 'drift-by-majorities';
    for (const n of node) await n.set(fenceKeyOf(resource), '100');
    /** Acquires and releases with only `yes` granting: the other node is held by a stranger. */
    const acquireOn = async (yes: [number, number]): Promise<number> => {
      const other = [0, 1, 2].find((i) => !yes.includes(i))!;
      await node[other]!.set(lockKeyOf(resource), 'a-stranger', 'PX', 60_000);
      const lock = await rl.tryAcquire(resource);
      await node[other]!.del(lockKeyOf(resource));
      expect(lock, `acquire on nodes ${yes}`).not.toBeNull();
      await lock!.release();
      return lock!.fence!;
    };

    // Node 0 is in every majority but the last, so without phase 2 it runs ahead of
    // the others, and the last majority {1, 2} knows only their lower counters.
    const majorities: [number, number][] = [
      [0, 1],
      [0, 2],
      [0, 1],
      [0, 2],
      [0, 1],
      [1, 2],
    ];
    const tokens: number[] = [];
    for (const yes of majorities) {
      const token = await acquireOn(yes);
      const previous = tokens.at(-1);
      if (previous !== undefined) {
        expect(
          token,
          `acquisition on nodes ${yes} got ${token}, not above ${previous} (counters now ${await counters(e, resource)})`,
        ).toBeGreaterThan(previous);
      }
      tokens.push(token);
    }
    // The walk-through of docs/safety.md: without phase 2 the last token would be 104.
    expect(tokens).toEqual([101, 102, 103, 104, 105, 106]);
    expect(await counters(e, resource)).toEqual([105, 106, 106]);
  });

  it('keeps tokens increasing when the majority changes while a node is paused', async () => {
    const resource = 'drift-by-pauses';
    // Counters as a version without phase 2 leaves them after node 0 ran ahead.
    await node[0]!.set(fenceKeyOf(resource), '104');
    await node[1]!.set(fenceKeyOf(resource), '102');
    await node[2]!.set(fenceKeyOf(resource), '102');

    e.nodes[2]!.pause();
    const x = await rl.tryAcquire(resource);
    expect(x).not.toBeNull();
    await x!.release();
    e.nodes[2]!.resume(); // runs X's queued acquire and release late

    e.nodes[0]!.pause();
    const y = await rl.tryAcquire(resource);
    expect(y).not.toBeNull();
    await y!.release();
    e.nodes[0]!.resume();

    expect(x!.fence).toBe(105);
    // Without phase 2, Y would read 103 + 1 on node 1 and 103 + 1 on node 2: 104.
    expect(y!.fence, `counters now ${await counters(e, resource)}`).toBeGreaterThan(x!.fence!);
    expect(y!.fence).toBe(106);
  });

  it('skips phase 2 when every granting node returns the same counter: no extra round trip', async () => {
    const resource = 'healthy';
    // The first acquisition seeds each counter from its node's clock, so they differ; a node
    // that answers after the quorum is not synced in that round. Rounds that include it
    // sync it, and from then on every node advances its counter once per round.
    const converged = async () => {
      const now = await counters(e, resource);
      return now[0] !== null && now.every((f) => f === now[0]);
    };
    for (let i = 0; !(await converged()); i++) {
      expect(i, `counters never converged: ${await counters(e, resource)}`).toBeLessThan(50);
      await (await rl.tryAcquire(resource))!.release();
    }
    const scriptCalls = () =>
      Promise.all(
        node.map(async (n) => {
          const info = await n.info('commandstats');
          let calls = 0;
          for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) {
            calls += Number(m[1]);
          }
          return calls;
        }),
      );
    // A release is decided at quorum, so the last node may still be running it. Its answer
    // to inspect (one more script, on the same connection) comes after it.
    const settled = async () => {
      await rl.inspect(resource);
      return scriptCalls();
    };
    const before = await settled();
    const rounds = 10;
    const tokens: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const lock = (await rl.tryAcquire(resource))!;
      tokens.push(lock.fence!);
      await lock.release();
    }
    const after = await settled();
    // One acquire script and one release script per node per round, plus the inspect.
    const expected = rounds * 2 + 1;
    expect(
      after.map((a, i) => a - before[i]!),
      `tokens ${tokens}, counters ${await counters(e, resource)}`,
    ).toEqual([expected, expected, expected]);
  });
});

describe('randomized faults on a minority', () => {
  type Fault = 'pause' | 'kill' | 'wipe';

  async function run(size: number, steps: number, seed: number): Promise<Acquisition[]> {
    const e = await ensemble(size);
    const resource = `random-${size}`;
    const workers = [0, 1, 2].map(() =>
      redlock(e, { ttl: 2_000, nodeTimeout: 500, retry: { minDelay: 5, maxDelay: 50 } }),
    );
    const history: Acquisition[] = [];
    const plans = fc.sample(
      fc.array(
        fc.tuple(
          fc.shuffledSubarray(
            Array.from({ length: size }, (_, i) => i),
            { minLength: 0, maxLength: Math.floor((size - 1) / 2) },
          ),
          fc.array(fc.constantFrom<Fault>('pause', 'pause', 'kill', 'wipe'), {
            minLength: size,
            maxLength: size,
          }),
        ),
        { minLength: steps, maxLength: steps },
      ),
      { seed, numRuns: 1 },
    )[0]!;

    for (const [minority, kinds] of plans) {
      const faults = minority.map((i) => ({ i, kind: kinds[i]! }));
      for (const { i, kind } of faults) {
        if (kind === 'pause') e.nodes[i]!.pause();
        else await e.nodes[i]!.kill();
      }
      // Three clients contend, each acquiring twice; some rounds fail and retry.
      await Promise.all(
        workers.map(async (w, c) => {
          for (let k = 0; k < 2; k++) {
            let startedAt = performance.now();
            let lock: Lock | undefined;
            // On a loaded machine healthy nodes can miss the deadline too; that attempt
            // failed (no token) and a new one begins.
            for (let attempt = 1; !lock; attempt++) {
              startedAt = performance.now();
              lock = await w.acquire(resource, { wait: 20_000 }).catch((err: unknown) => {
                if (!(err instanceof QuorumError) || attempt >= 20) throw err;
                return undefined;
              });
            }
            const completedAt = performance.now();
            history.push({ client: c, startedAt, completedAt, token: lock.fence! });
            await new Promise((r) => setTimeout(r, Math.random() * 10));
            await lock.release().catch(() => {});
          }
        }),
      );
      for (const { i, kind } of faults) {
        if (kind === 'pause') e.nodes[i]!.resume();
        else await e.nodes[i]!.restart({ keepData: kind === 'kill' });
      }
      await Promise.all(workers.map((w) => allReachable(w, resource)));
    }
    return history;
  }

  it.each([
    [3, 16],
    [5, 12],
  ])(
    'N=%i: every token exceeds the tokens of all acquisitions completed before it began',
    async (size, steps) => {
      const seed = Number(process.env.QUORUMLOCK_TEST_SEED ?? Date.now() % 1_000_000);
      const history = await run(size, steps, seed).catch((err: unknown) => {
        throw new Error(
          `fault schedule of seed ${seed} (QUORUMLOCK_TEST_SEED=${seed} replays it)`,
          {
            cause: err,
          },
        );
      });
      expect(history.length).toBe(steps * 3 * 2);
      for (const a of history) expect(Number.isSafeInteger(a.token)).toBe(true);
      const violations = orderViolations(history);
      expect(
        violations.slice(0, 5),
        `${violations.length} violations in ${history.length} acquisitions, seed ${seed}`,
      ).toEqual([]);
      // Distinct successful acquisitions never share a token (docs/safety.md, lemma 2).
      expect(new Set(history.map((a) => a.token)).size, `seed ${seed}`).toBe(history.length);
    },
  );
});

describe('restarts', () => {
  it('keeps tokens increasing across nodes restarted with their data wiped', async () => {
    const e = await ensemble(3);
    const rl = redlock(e);
    const resource = 'wiped';
    const tokens: number[] = [];
    const acquire = async () => {
      const lock = (await rl.tryAcquire(resource))!;
      tokens.push(lock.fence!);
      await lock.release();
    };
    await acquire();
    await acquire();
    for (let i = 0; i < 3; i++) {
      await e.nodes[i]!.restart({ keepData: false });
      await allReachable(rl, resource);
      // Make the wiped node count: pause another node so it must be in the majority.
      const other = (i + 1) % 3;
      e.nodes[other]!.pause();
      await acquire();
      e.nodes[other]!.resume();
      await acquire();
    }
    // Every node at once, as after a total power loss without persistence.
    await Promise.all(e.nodes.map((n) => n.restart({ keepData: false })));
    await allReachable(rl, resource);
    await acquire();
    await acquire();
    for (let k = 1; k < tokens.length; k++) {
      expect(tokens[k], `tokens ${tokens}`).toBeGreaterThan(tokens[k - 1]!);
    }
  });

  it('keeps each counter exactly across a crash with appendfsync always', async () => {
    const e = await ensemble(3, { appendonly: true });
    const rl = redlock(e);
    const resource = 'durable';
    const issued: number[] = [];
    for (let k = 0; k < 3; k++) {
      const held = (await rl.tryAcquire(resource))!;
      issued.push(held.fence!);
      await held.release();
    }
    const before = await counters(e, resource);
    await Promise.all(e.nodes.map((n) => n.kill()));
    await Promise.all(e.nodes.map((n) => n.restart({ keepData: true })));
    await allReachable(rl, resource);
    expect(await counters(e, resource)).toEqual(before);
    const lock = (await rl.tryAcquire(resource))!;
    expect(lock.fence).toBeGreaterThan(Math.max(...issued));
    // Continued from a surviving counter, not seeded again from the clock. (The
    // token is the maximum over the nodes that granted it, so a node that
    // answered after the decision may hold a higher counter.)
    expect(before.map((c) => Number(c) + 1)).toContain(lock.fence);
    await lock.release();
  });
});

describe('stale writer, end to end', () => {
  it('rejects the late write of a holder whose lock expired while it was stalled', async () => {
    const e = await ensemble(3);
    const [store] = (await ensemble(1)).nodes.map((n) => n.client());
    clients.push(store!);
    const a = redlock(e);
    const b = redlock(e);
    const resource = 'invoice:42';

    const lockA = await a.acquire(resource, { ttl: 400 });
    expect((await fencedSet(store!, resource, 'draft by A', lockA.fence!)).accepted).toBe(true);

    // A stalls (a GC pause): it neither renews nor releases, and its lock expires.
    const lockB = await b.acquire(resource, { wait: 5_000 });
    expect(lockA.remaining()).toBeLessThanOrEqual(0);
    expect(lockB.fence!).toBeGreaterThan(lockA.fence!);
    expect(await fencedSet(store!, resource, 'final by B', lockB.fence!)).toEqual({
      accepted: true,
      highest: lockB.fence,
    });

    // A wakes up and, unaware, writes with its old token: the store refuses it.
    expect(await fencedSet(store!, resource, 'late write by A', lockA.fence!)).toEqual({
      accepted: false,
      highest: lockB.fence,
    });
    expect(await store!.get(resource)).toBe('final by B');
    expect(await highestFence(store!, resource)).toBe(lockB.fence);
    await lockB.release();
  });
});
