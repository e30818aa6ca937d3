import { describe, expect, it } from 'vitest';
import { NodeUnavailableError } from '../../src/node.js';
import { Scheduler } from './clock.js';
import { ConnectionResetError, SimServer } from './node.js';
import { seeded } from './random.js';

const LINK = { requestDelay: 1, replyDelay: 1, jitter: 0 };
const never = new AbortController().signal;
const K = ['quorumlock:{a}'];
const F = ['quorumlock:{a}:fence'];

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
  const acquire = (value: string, prefix: string, ttl: number) =>
    node.acquire({ keys: K, fenceKeys: F, value, prefix, ttl }, never);
  return { sched, server, node, at, acquire };
}

describe('SimServer scripts (the decisions of src/scripts/*.lua)', () => {
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
    expect(other.value).toEqual({ ok: false, holderTtl: 90 });
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

  it('releases only its own value and publishes the released value to subscribers', async () => {
    const w = world();
    const notices: Array<string | undefined> = [];
    w.at(0, () => w.node.subscribe('ch', (v) => notices.push(v), never));
    w.at(5, () => w.acquire('p.0', 'p', 1000));
    const foreign = w.at(10, () => w.node.release(K, 'x', ['ch'], never));
    const own = w.at(20, () => w.node.release(K, 'p.0', ['ch'], never));
    const again = w.at(30, () => w.node.release(K, 'p.0', ['ch'], never));
    w.at(40, () => w.acquire('q.0', 'q', 1000));
    const silent = w.at(50, () => w.node.release(K, 'q.0', [''], never));
    await w.sched.run();
    expect([foreign.value, own.value, again.value, silent.value]).toEqual([0, 1, 0, 1]);
    expect(notices).toEqual(['p.0']);
  });

  it('fails a release with fewer channels than keys after deleting the first key, as Redis does', async () => {
    const w = world();
    const keys = ['quorumlock:{a}', 'quorumlock:{b}'];
    w.at(0, () =>
      w.node.acquire({ keys, fenceKeys: null, value: 'p.0', prefix: 'p', ttl: 1000 }, never),
    );
    const rel = w.at(10, () => w.node.release(keys, 'p.0', [], never));
    await w.sched.run();
    expect(String(rel.error)).toMatch(/arguments must be strings or integers/);
    expect(w.server.liveLockEntries()).toEqual([{ key: 'quorumlock:{b}', value: 'p.0' }]);
  });

  it('raises fence counters in phase 2 but never lowers them, and reports whether the key is still ours', async () => {
    const w = world({ wallOffset: 0 });
    w.at(0, () => w.acquire('p.0', 'p', 1000));
    const up = w.at(10, () => w.node.fenceSync(K, F, 'p.0', [5000], never));
    const down = w.at(20, () => w.node.fenceSync(K, F, 'x', [7], never));
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
    const low = w.at(20, () => w.node.fenceSync(K, F, 'p.0', [7], never));
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
