import { describe, expect, it } from 'vitest';
import {
  type AcquireRequest,
  NodeUnavailableError,
  type ReleaseRequest,
} from '../../src/redis/node.js';
import { Scheduler } from './clock.js';
import { ConnectionResetError, SimServer } from './node.js';
import { seeded } from './random.js';

const LINK = { requestDelay: 1, replyDelay: 1, jitter: 0 };
const never = new AbortController().signal;
const K = ['quorumlock:{a}'];
const F = ['quorumlock:{a}:fence'];
const Q = ['quorumlock:{a}:queue'];
const E = ['quorumlock:{a}:lease'];
const CHANNEL = 'quorumlock:turn:';
/** Acquire keys of resources named in `rs`: lock, fence, queue and lease keys. */
const keysOf = (rs: readonly string[]) => [
  ...rs.map((r) => `quorumlock:{${r}}`),
  ...rs.map((r) => `quorumlock:{${r}}:fence`),
  ...rs.map((r) => `quorumlock:{${r}}:queue`),
  ...rs.map((r) => `quorumlock:{${r}}:lease`),
];
/** An acquire request with the library's usual settings; `more` overrides. */
function request(value: string, prefix: string, ttl: number, more: Partial<AcquireRequest> = {}) {
  return {
    keys: keysOf(['a']),
    value,
    prefix,
    ttl,
    fencing: true,
    member: '',
    ticket: 0,
    lease: 3000,
    grace: 50,
    channel: CHANNEL,
    seed: 0,
    retention: 3_600_000,
    ...more,
  } satisfies AcquireRequest;
}

/** A release request with the library's usual settings; `more` overrides. */
function release(value: string, more: Partial<ReleaseRequest> = {}): ReleaseRequest {
  return {
    keys: keysOf(['a']),
    value,
    leaving: '',
    grace: 50,
    channel: CHANNEL,
    restore: '',
    seed: 0,
    retention: 3_600_000,
    ...more,
  };
}

function world(clock: { rate?: number; wallOffset?: number } = {}) {
  const sched = new Scheduler();
  const server = new SimServer(sched, 'n0', clock, seeded(1));
  const node = server.connect('c0', LINK);
  /** Runs `fn` at true time `at` as the client and records when and how it settled. */
  const at = <T>(t: number, fn: () => Promise<T>) => {
    const out: { value?: T; error?: unknown; settledAt?: number } = {};
    sched.at(t, 'c0', () => {
      fn().then(
        (value) => Object.assign(out, { value, settledAt: sched.now }),
        (error: unknown) => Object.assign(out, { error, settledAt: sched.now }),
      );
    });
    return out;
  };
  const acquire = (
    value: string,
    prefix: string,
    ttl: number,
    more: Partial<AcquireRequest> = {},
  ) => node.acquire(request(value, prefix, ttl, more), never);
  return { sched, server, node, at, acquire };
}

describe('SimServer scripts (the decisions of src/redis/scripts/*.lua)', () => {
  it('grants a free key, seeding the fence from server TIME in µs, then counts up', async () => {
    const w = world({ wallOffset: 1.7e12 });
    const first = w.at(0, () => w.acquire('p.0', 'p', 100));
    const second = w.at(200, () => w.acquire('q.0', 'q', 100));
    await w.sched.run();
    // The request reaches the server at true time 1: its wall clock reads 1.7e12 + 1 ms.
    expect(first.value).toEqual({ ok: true, fences: [(1.7e12 + 1) * 1000] });
    expect(second.value).toEqual({ ok: true, fences: [(1.7e12 + 1) * 1000 + 1] });
  });

  it('refuses a key held by another holder and reports its remaining ttl', async () => {
    const w = world();
    w.at(0, () => w.acquire('p.0', 'p', 100));
    const other = w.at(10, () => w.acquire('q.0', 'q', 100));
    await w.sched.run();
    expect(other.value).toEqual({
      ok: false,
      holderTtl: 90,
      ticket: 0,
      rank: -1,
      turnTtl: 0,
      fence: 0,
    });
  });

  it('treats leftovers of the same acquisition (same prefix) as free', async () => {
    const w = world();
    w.at(0, () => w.acquire('p.0', 'p', 100));
    const retry = w.at(10, () => w.acquire('p.1', 'p', 100));
    await w.sched.run();
    expect(retry.value).toMatchObject({ ok: true });
    expect(w.server.liveLockEntries()).toEqual([{ key: K[0], value: 'p.1' }]);
  });

  it('expires keys on the server clock: a fast clock ends them early in true time', async () => {
    const w = world({ rate: 1.25 });
    w.at(0, () => w.acquire('p.0', 'p', 100));
    const early = w.at(79, () => w.acquire('q.0', 'q', 100));
    const late = w.at(83, () => w.acquire('q.1', 'q', 100));
    await w.sched.run();
    // Set at true 1 (server ms 1.25), expires after server ms 101.25: true ≈ 81.
    expect(early.value).toMatchObject({ ok: false });
    expect(late.value).toMatchObject({ ok: true });
  });

  it('expires keys at once when the server wall clock jumps past them', async () => {
    const w = world();
    w.at(0, () => w.acquire('p.0', 'p', 100));
    w.sched.at(5, 'world', () => w.server.clock.stepWall(1000));
    const after = w.at(6, () => w.acquire('q.0', 'q', 100));
    await w.sched.run();
    expect(after.value).toMatchObject({ ok: true });
  });

  it('extends only its own key and never shortens it', async () => {
    const w = world();
    w.at(0, () => w.acquire('p.0', 'p', 1000));
    const shorter = w.at(10, () => w.node.extend(K, 'p.0', 50, never));
    const wrong = w.at(20, () => w.node.extend(K, 'x', 5000, never));
    const ttl = w.at(30, () => w.node.inspect(K[0]!, F[0]!, never));
    await w.sched.run();
    expect(shorter.value).toBe(true);
    expect(wrong.value).toBe(false);
    expect(ttl.value?.pttl).toBe(1000 - 30);
  });

  it('releases only its own value, deleting the key when nobody waits, and publishes nothing', async () => {
    const w = world();
    const notices: Array<string | undefined> = [];
    w.at(0, () => w.node.subscribe(`${CHANNEL}A`, (v) => notices.push(v), never));
    w.at(5, () => w.acquire('p.0', 'p', 1000));
    const foreign = w.at(10, () => w.node.release(release('x'), never));
    const own = w.at(20, () => w.node.release(release('p.0'), never));
    const again = w.at(30, () => w.node.release(release('p.0'), never));
    await w.sched.run();
    expect([foreign.value, own.value, again.value]).toEqual([0, 1, 0]);
    expect(notices).toEqual([]);
    expect(w.server.keyspace().map((k) => k.key)).toEqual([F[0]]);
  });

  it('raises fence counters in phase 2 but never lowers them, and reports whether the key is still ours', async () => {
    const w = world({ wallOffset: 0 });
    w.at(0, () => w.acquire('p.0', 'p', 1000));
    const up = w.at(10, () => w.node.fenceSync(K, F, 'p.0', [5000], 1000, never));
    const down = w.at(20, () => w.node.fenceSync(K, F, 'x', [7], 1000, never));
    const read = w.at(30, () => w.node.inspect(K[0]!, F[0]!, never));
    await w.sched.run();
    expect(up.value).toBe(true);
    expect(down.value).toBe(false);
    expect(read.value).toEqual({ value: 'p.0', pttl: 970, fence: 5000 });
  });

  it('seeds a counter lost since phase 1 from server TIME in phase 2, never from the token alone', async () => {
    const w = world({ wallOffset: 0 });
    w.at(0, () => w.acquire('p.0', 'p', 10_000));
    // The node loses its data, keys and counters, and comes back at once.
    w.sched.at(5, 'world', () => w.server.crash(false));
    w.sched.at(6, 'world', () => w.server.restart());
    const low = w.at(20, () => w.node.fenceSync(K, F, 'p.0', [7], 1000, never));
    const read = w.at(30, () => w.node.inspect(K[0]!, F[0]!, never));
    await w.sched.run();
    expect(low.value).toBe(false);
    // Reached the server at true 21 ms: TIME reads 21 000 µs, above the token.
    expect(read.value).toEqual({ value: null, pttl: -2, fence: 21_000 });
  });

  it('rejects a ttl Redis would reject, writing nothing', async () => {
    const w = world();
    const bad = w.at(0, () => w.acquire('p.0', 'p', 0));
    await w.sched.run();
    expect(String(bad.error)).toMatch(/invalid expire time/);
    expect(w.server.liveLockEntries()).toEqual([]);
  });
});

describe('SimServer waiter queues, turns and hand-overs (acquire.lua, release.lua)', () => {
  // Members: '<instance>.<prefix>' can be handed the lock itself ('<prefix>.g');
  // '<instance>.<prefix>.t' is handed a turn ('~turn~<member>').
  const A = 'A.a';
  const B = 'B.b.t';
  const C = 'C.c';
  /** A world where p.0 holds "a" from true time 0 and waiters A then B queue behind it. */
  function queued(clock: { rate?: number; wallOffset?: number } = {}, lease = 3000) {
    const w = world(clock);
    const notices: string[] = [];
    for (const i of ['A', 'B', 'C']) {
      w.at(0, () => w.node.subscribe(`${CHANNEL}${i}`, (v) => notices.push(`${i} ${v}`), never));
    }
    const holder = w.at(5, () => w.acquire('p.0', 'p', 1000));
    const a1 = w.at(10, () => w.acquire('a.0', 'a', 1000, { member: A, lease }));
    const b1 = w.at(12, () => w.acquire('b.0', 'b', 1000, { member: B, ticket: 1, lease }));
    return { ...w, notices, holder, a1, b1 };
  }
  const zset = (w: ReturnType<typeof world>, key: string) => {
    const k = w.server.keyspace().find((e) => e.key === key);
    return k?.type === 'zset' ? k.members : undefined;
  };

  it('queues waiters with increasing tickets and a lease on server time; the queue expires with the lease', async () => {
    const w = queued({ wallOffset: 0 });
    const again = w.at(20, () => w.acquire('a.1', 'a', 1000, { member: A, ticket: 1 }));
    const raised = w.at(30, () => w.acquire('b.1', 'b', 1000, { member: B, ticket: 7 }));
    await w.sched.run();
    // A can be handed the lock: its refusals carry the fence counter (seeded at true 6 ms).
    const refused = { ok: false, turnTtl: 0, fence: 0 };
    expect(w.a1.value).toEqual({ ...refused, holderTtl: 995, ticket: 1, rank: 0, fence: 6000 });
    // B proposed 1, the ticket it has: it keeps it, tied with A and behind A by member id.
    expect(w.b1.value).toEqual({ ...refused, holderTtl: 993, ticket: 1, rank: 1 });
    expect(again.value).toEqual({ ...refused, holderTtl: 985, ticket: 1, rank: 0, fence: 6000 });
    expect(raised.value).toEqual({ ...refused, holderTtl: 975, ticket: 7, rank: 1 });
    expect(zset(w, Q[0]!)).toEqual([
      [A, 1],
      [B, 7],
    ]);
    // Leases end 3000 ms after each waiter's last call reached the server (true 21 and 31).
    expect(zset(w, E[0]!)).toEqual([
      [A, 3021],
      [B, 3031],
    ]);
    expect(w.server.keyspace().every((k) => k.pttl > 0)).toBe(true);
  });

  it('refuses a caller that does not wait while anyone is queued, even on a free key, and writes nothing', async () => {
    const v = queued();
    v.sched.at(50, 'world', () => v.server.clock.stepWall(2000));
    // The holder's key expired on its own: the key is free, but A and B are queued.
    const barge = v.at(60, () => v.acquire('t.0', 't', 1000));
    await v.sched.run();
    expect(barge.value).toEqual({
      ok: false,
      holderTtl: -1,
      ticket: 0,
      rank: -1,
      turnTtl: 0,
      fence: 0,
    });
    expect(v.server.liveLockEntries()).toEqual([]);
    expect(v.notices).toEqual([]);
  });

  it('a release hands the lock itself to a first waiter that can take it, advancing the fence, and tells it and the next', async () => {
    const w = queued({ wallOffset: 0 });
    const rel = w.at(100, () => w.node.release(release('p.0'), never));
    const other = w.at(110, () => w.acquire('b.1', 'b', 1000, { member: B, ticket: 2 }));
    const barge = w.at(115, () => w.acquire('t.0', 't', 1000));
    const mine = w.at(120, () => w.acquire('a.1', 'a', 1000, { member: A, ticket: 1 }));
    await w.sched.run();
    expect(rel.value).toBe(1);
    expect(w.notices).toEqual([`A ${A} ${K[0]} g 6001 50`, `B ${B} ${K[0]} 50`]);
    // For another waiter a handed-over lock is not a holder: it counts as a turn;
    // A keeps its place at the head until it takes the lock or leaves.
    expect(other.value).toMatchObject({
      ok: false,
      holderTtl: -1,
      turnTtl: 40,
      ticket: 2,
      rank: 1,
    });
    expect(barge.value).toMatchObject({ ok: false, holderTtl: 35 });
    // A finds the lock handed to it: its remaining grace and the fence, nothing written.
    expect(mine.value).toEqual({
      ok: false,
      granted: { pttl: 30, fence: 6001 },
      holderTtl: -1,
      ticket: 0,
      rank: -1,
      turnTtl: 0,
      fence: 6001,
    });
    expect(w.server.liveLockEntries()).toEqual([{ key: K[0], value: 'a.g' }]);
    // A keeps its place (its lease cut to the grace) until its release or the lease removes it.
    expect(zset(w, Q[0]!)).toEqual([
      [A, 1],
      [B, 2],
    ]);
  });

  it('a release hands a turn to a first waiter that cannot be handed the lock; others are refused meanwhile', async () => {
    const w = world();
    const notices: string[] = [];
    w.at(0, () => w.node.subscribe(`${CHANNEL}B`, (v) => notices.push(v ?? ''), never));
    w.at(5, () => w.acquire('p.0', 'p', 1000));
    w.at(10, () => w.acquire('b.0', 'b', 1000, { member: B }));
    w.at(12, () => w.acquire('c.0', 'c', 1000, { member: C }));
    w.at(100, () => w.node.release(release('p.0'), never));
    const other = w.at(110, () => w.acquire('c.1', 'c', 1000, { member: C, ticket: 2 }));
    const mine = w.at(120, () => w.acquire('b.1', 'b', 1000, { member: B, ticket: 1 }));
    await w.sched.run();
    expect(notices).toEqual([`${B} ${K[0]}`]);
    expect(other.value).toMatchObject({ ok: false, holderTtl: -1, turnTtl: 40, rank: 1 });
    expect(mine.value).toMatchObject({ ok: true });
    expect(w.server.liveLockEntries()).toEqual([{ key: K[0], value: 'b.1' }]);
  });

  it('a turn nobody claims ends after its grace; then the next waiter gets the key', async () => {
    const w = world();
    w.at(5, () => w.acquire('p.0', 'p', 1000));
    w.at(10, () => w.acquire('b.0', 'b', 1000, { member: B }));
    w.at(12, () => w.acquire('c.0', 'c', 1000, { member: 'C.c.t' }));
    w.at(100, () => w.node.release(release('p.0'), never));
    const during = w.at(140, () => w.acquire('c.1', 'c', 1000, { member: 'C.c.t', ticket: 2 }));
    // At 160 the turn (PX 50 from 101) is gone: C is first in the queue now.
    const after = w.at(160, () => w.acquire('c.2', 'c', 1000, { member: 'C.c.t', ticket: 2 }));
    await w.sched.run();
    expect(during.value).toMatchObject({ ok: false });
    expect(after.value).toMatchObject({ ok: true });
  });

  it('a free key goes to the first waiter: handed to it when another caller finds it, taken as handed over by the first itself', async () => {
    const w = queued({ wallOffset: 0 });
    w.sched.at(50, 'world', () => w.server.clock.stepWall(2000));
    // B finds the key free (the holder's ran out) with A ahead: A is handed the lock.
    const b = w.at(60, () => w.acquire('b.1', 'b', 1000, { member: B, ticket: 2 }));
    const a = w.at(70, () => w.acquire('a.1', 'a', 1000, { member: A, ticket: 1 }));
    await w.sched.run();
    expect(b.value).toMatchObject({ ok: false, holderTtl: -1, ticket: 2, rank: 1, turnTtl: 50 });
    expect(a.value).toMatchObject({ ok: false, granted: { pttl: 40, fence: 6001 } });
    expect(w.notices).toEqual([`A ${A} ${K[0]} g 6001 50`, `B ${B} ${K[0]} 50`]);

    const v = queued({ wallOffset: 0 });
    v.sched.at(50, 'world', () => v.server.clock.stepWall(2000));
    // A itself finds the key free and is first: it takes the lock as handed over.
    const first = v.at(60, () => v.acquire('a.1', 'a', 1000, { member: A, ticket: 1 }));
    await v.sched.run();
    expect(first.value).toMatchObject({ ok: false, granted: { pttl: 50, fence: 6001 } });
    expect(v.server.liveLockEntries()).toEqual([{ key: K[0], value: 'a.g' }]);
    // Only B, now first in line, is told when to look again.
    expect(v.notices).toEqual([`B ${B} ${K[0]} 50`]);
  });

  it('drops waiters whose lease ran out on the server clock before handing on', async () => {
    // The server clock runs twice as fast: a 100 ms lease runs out after 50 true ms.
    const w = queued({ rate: 2 }, 100);
    const rel = w.at(80, () => w.node.release(release('p.0'), never));
    await w.sched.run();
    expect(rel.value).toBe(1);
    expect(w.notices).toEqual([]);
    expect(w.server.keyspace().map((k) => k.key)).toEqual([F[0]]);
  });

  it('undoing a claim puts back the value it is told to; a leaving waiter hands on what it was handed', async () => {
    const w = queued({ wallOffset: 0 });
    w.at(100, () => w.node.release(release('p.0'), never));
    // A gives back the lock it was handed (its claim failed elsewhere), keeping it reserved.
    const undo = w.at(120, () => w.node.release(release('a.g', { restore: 'a.g' }), never));
    const kept = w.at(125, () => w.node.inspect(K[0]!, F[0]!, never));
    // A leaves: its handed-over lock goes to B (a turn).
    const leave = w.at(130, () => w.node.release(release('a.g', { leaving: A }), never));
    await w.sched.run();
    expect(undo.value).toBe(1);
    expect(kept.value).toMatchObject({ value: 'a.g', pttl: 45 });
    expect(leave.value).toBe(1);
    expect(w.notices).toEqual([`A ${A} ${K[0]} g 6001 50`, `B ${B} ${K[0]} 50`, `B ${B} ${K[0]}`]);
    expect(w.server.liveLockEntries()).toEqual([{ key: K[0], value: `~turn~${B}` }]);
    // B keeps its place until it claims the turn (or its lease, cut to the grace, runs out).
    expect(zset(w, Q[0]!)).toEqual([[B, 1]]);
  });

  it('seeds a fresh fence counter from a proposal up to 1 s ahead of server time, else from TIME; counters expire after their retention', async () => {
    const w = world({ wallOffset: 0 });
    // Server TIME at true 1 ms is 1000 µs.
    const close = w.at(0, () => w.acquire('p.0', 'p', 10, { seed: 900_000, retention: 100 }));
    const counted = w.at(20, () => w.acquire('q.0', 'q', 10, { seed: 9e9, retention: 100 }));
    // Expired 100 ms after its last use (true 21): seeded again from TIME, the proposal being too far ahead.
    const far = w.at(200, () => w.acquire('r.0', 'r', 10, { seed: 1_300_000, retention: 100 }));
    const behind = w.at(400, () => w.acquire('s.0', 's', 10, { seed: 5, retention: 100 }));
    const read = w.at(410, () => w.node.inspect(K[0]!, F[0]!, never));
    await w.sched.run();
    expect(close.value).toEqual({ ok: true, fences: [900_000] });
    expect(counted.value).toEqual({ ok: true, fences: [900_001] });
    expect(far.value).toEqual({ ok: true, fences: [201_000] });
    expect(behind.value).toEqual({ ok: true, fences: [401_000] });
    expect(read.value?.fence).toBe(401_000);
    expect(w.server.keyspace().every((k) => k.pttl > 0)).toBe(true);
  });
});

describe('SimServer faults', () => {
  it('queues requests while paused and answers them on resume, long after the caller gave up', async () => {
    const w = world();
    w.sched.at(0, 'world', () => w.server.pause());
    w.sched.at(500, 'world', () => w.server.resume());
    const call = w.at(1, () => w.acquire('p.0', 'p', 100));
    await w.sched.run();
    expect(call.settledAt).toBe(501);
    expect(call.value).toMatchObject({ ok: true });
  });

  it('expires keys while paused: the clock of a frozen server keeps running', async () => {
    const w = world();
    w.at(0, () => w.acquire('p.0', 'p', 100));
    w.sched.at(10, 'world', () => w.server.pause());
    w.sched.at(300, 'world', () => w.server.resume());
    const read = w.at(20, () => w.node.inspect(K[0]!, F[0]!, never));
    await w.sched.run();
    expect(read.value?.value).toBeNull();
  });

  it('fails calls in flight when the server crashes, and fails new calls at once while it is down', async () => {
    const w = world();
    const inFlight = w.at(0, () => w.acquire('p.0', 'p', 100));
    w.sched.at(0.5, 'world', () => w.server.crash(true));
    const whileDown = w.at(2, () => w.acquire('p.0', 'p', 100));
    await w.sched.run();
    expect(inFlight.error).toBeInstanceOf(ConnectionResetError);
    expect(whileDown.error).toBeInstanceOf(NodeUnavailableError);
    expect(whileDown.settledAt).toBe(2);
  });

  it('keeps keys across a crash with data and loses them without', async () => {
    const kept = world();
    kept.at(0, () => kept.acquire('p.0', 'p', 10_000));
    kept.sched.at(10, 'world', () => kept.server.crash(true));
    kept.sched.at(20, 'world', () => kept.server.restart());
    await kept.sched.run();
    expect(kept.server.liveLockEntries()).toHaveLength(1);

    const lost = world();
    lost.at(0, () => lost.acquire('p.0', 'p', 10_000));
    lost.sched.at(10, 'world', () => lost.server.crash(false));
    lost.sched.at(20, 'world', () => lost.server.restart());
    const reseeded = lost.at(30, () => lost.acquire('q.0', 'q', 100));
    await lost.sched.run();
    expect(reseeded.value).toMatchObject({ ok: true });
    expect(lost.server.liveLockEntries()).toHaveLength(1);
  });

  it('loses requests over a cut link, and runs them but loses the reply over a half-cut one', async () => {
    const w = world();
    w.sched.at(0, 'world', () => w.server.partition('c0', 'requests'));
    const lostRequest = w.at(1, () => w.acquire('p.0', 'p', 1000));
    w.sched.at(10, 'world', () => w.server.partition('c0', 'replies'));
    const lostReply = w.at(11, () => w.acquire('q.0', 'q', 1000));
    await w.sched.run();
    expect(lostRequest.settledAt).toBeUndefined();
    expect(lostReply.settledAt).toBeUndefined();
    expect(w.server.liveLockEntries()).toEqual([{ key: K[0], value: 'q.0' }]);
  });

  it('keeps replies in order unless reordering is on', async () => {
    const sched = new Scheduler();
    const server = new SimServer(sched, 'n0', {}, seeded(3));
    const node = server.connect('c0', { requestDelay: 1, replyDelay: 1, jitter: 20 });
    const order = (reorder: boolean) => {
      const seen: number[] = [];
      sched.at(sched.now, 'world', () => server.setReorder('c0', reorder));
      for (let i = 0; i < 20; i++) {
        sched.at(sched.now + i * 0.01, 'c0', () => {
          void node.inspect(`k${i}`, 'f', never).then(() => seen.push(i));
        });
      }
      return seen;
    };
    const fifo = order(false);
    await sched.run();
    const shuffled = order(true);
    await sched.run();
    expect(fifo).toEqual([...fifo].sort((a, b) => a - b));
    expect(shuffled).not.toEqual([...shuffled].sort((a, b) => a - b));
  });

  it('tells whether a server stayed reachable from a client since a given time', async () => {
    const w = world();
    w.sched.at(10, 'world', () => w.server.pause());
    w.sched.at(20, 'world', () => w.server.resume());
    await w.sched.run();
    expect(w.server.reachableSince('c0', 5)).toBe(false);
    expect(w.server.reachableSince('c0', 25)).toBe(true);
  });
});
