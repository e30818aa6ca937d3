import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { systemClock } from '../../src/clock.js';
import { QuorumError } from '../../src/errors.js';
import type {
  AcquireReply,
  AcquireRequest,
  InspectReply,
  LockNode,
  ReleaseRequest,
} from '../../src/redis/node.js';
import {
  fanOut,
  holderTtlOnQuorum,
  isInfrastructureFailure,
  type NodeOutcome,
  NodeTimeoutError,
  type Round,
} from '../../src/redis/quorum.js';
import { Redlock } from '../../src/redis/redlock.js';

/** A clock whose time moves only when the test says; timers fire in due order. */
class FakeClock implements Clock {
  #now = 0;
  readonly timers: Array<{ at: number; fn: () => void; live: boolean }> = [];

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return 1_700_000_000_000 + this.#now;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + Math.max(0, ms), fn, live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#now = Math.max(this.#now, due.at);
      due.live = false;
      due.fn();
    }
    this.#now = until;
  }
}

/** Lets every pending promise callback run. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * How one node behaves in a round: answers yes, no, or with an error, or stays
 * silent past the round's deadline: `late` answers yes after it, `hang` never answers.
 */
type Behaviour = 'yes' | 'no' | 'error' | 'late' | 'hang';
const BEHAVIOURS: readonly Behaviour[] = ['yes', 'no', 'error', 'late', 'hang'];
const TIMEOUT = 1000;

/** Every assignment of behaviours to `n` nodes. */
function* splits(n: number): Generator<Behaviour[]> {
  if (n === 0) {
    yield [];
    return;
  }
  for (const rest of splits(n - 1)) for (const b of BEHAVIOURS) yield [...rest, b];
}

/** A node that is only a label: the test's `call` decides what it answers. */
function labels(n: number): LockNode[] {
  return Array.from({ length: n }, (_, i) => ({ id: `node${i}` }) as unknown as LockNode);
}

const judge = (reply: 'yes' | 'no') =>
  reply === 'yes'
    ? { yes: true, status: 'acquired' as const }
    : { yes: false, status: 'taken' as const, holderTtl: 100 };

/**
 * Plays one split: the answering nodes answer one after the other in node
 * order, then the deadline passes, then the late nodes answer. After every
 * event the round must be decided exactly when its outcome has become certain.
 */
async function playSplit(split: readonly Behaviour[], quorum: number): Promise<void> {
  const n = split.length;
  const clock = new FakeClock();
  const replies = split.map(() => deferred<'yes' | 'no'>());
  const nodes = labels(n);
  let decided: Round<'yes' | 'no'> | undefined;
  let settled = false;
  const round = fanOut<'yes' | 'no'>({
    nodes,
    quorum,
    timeout: TIMEOUT,
    clock,
    call: (node) => replies[nodes.indexOf(node)]!.promise,
    judge,
  });
  round.then((r) => {
    decided = r;
    r.settled.then(() => {
      settled = true;
    });
  });
  const label = `split [${split.join(', ')}] with quorum ${quorum}`;
  let yes = 0;
  let no = 0;
  let yesAtDecision: number | undefined;
  const check = async (when: string) => {
    await flush();
    const certain = yes >= quorum || no > n - quorum;
    if (certain && yesAtDecision === undefined) yesAtDecision = yes;
    expect(decided !== undefined, `${label}, ${when}: decided`).toBe(certain);
  };
  await check('before any answer');
  for (const [i, b] of split.entries()) {
    if (b === 'yes') replies[i]!.resolve('yes');
    else if (b === 'no') replies[i]!.resolve('no');
    else if (b === 'error') replies[i]!.reject(new Error('boom'));
    else continue;
    if (b === 'yes') yes++;
    else no++;
    await check(`after node${i} answered ${b}`);
  }
  // Silent nodes must not end the round before the deadline...
  clock.advance(TIMEOUT - 1);
  await check('just before the deadline');
  expect(settled, `${label}: settled before the deadline`).toBe(
    split.every((b) => b !== 'late' && b !== 'hang'),
  );
  // ...and all of them time out at it.
  clock.advance(1);
  no += split.filter((b) => b === 'late' || b === 'hang').length;
  await check('at the deadline');
  expect(settled, `${label}: settled at the deadline`).toBe(true);
  // An answer after the deadline changes nothing.
  for (const [i, b] of split.entries()) if (b === 'late') replies[i]!.resolve('yes');
  await flush();
  const r = decided!;
  expect(r.ok, label).toBe(yesAtDecision! >= quorum);
  expect(r.outcomes.filter((o) => o.status === 'acquired')).toHaveLength(yesAtDecision!);
  expect(r.replies.size).toBe(yesAtDecision!);
  const final = await r.settled;
  const expected = split.map((b) =>
    b === 'yes' ? 'acquired' : b === 'no' ? 'taken' : b === 'error' ? 'error' : 'timeout',
  );
  expect(final.outcomes.map((o) => o.status)).toEqual(expected);
  expect(final.replies.size).toBe(split.filter((b) => b === 'yes').length);
}

describe('fanOut', () => {
  const cases: Array<[number, number]> = [];
  for (let n = 1; n <= 5; n++) {
    for (let q = Math.floor(n / 2) + 1; q <= n; q++) cases.push([n, q]);
  }

  it.each(cases)(
    'decides every split of %i nodes with quorum %i exactly when the outcome is certain',
    async (n, q) => {
      let count = 0;
      for (const split of splits(n)) {
        await playSplit(split, q);
        count++;
      }
      expect(count).toBe(5 ** n);
    },
  );

  // A coordinator that waited for the deadline would hang here for a minute; fail in ten seconds.
  describe('on the real clock, with a deadline far away', { timeout: 10_000 }, () => {
    /** A round over nodes that answer at once or never; never-answering ones are freed at the end. */
    async function round(answers: ReadonlyArray<'yes' | 'no' | 'hang'>, quorum: number) {
      const nodes = labels(answers.length);
      const hung = answers.map(() => deferred<'yes' | 'no'>());
      const started = performance.now();
      const r = await fanOut<'yes' | 'no'>({
        nodes,
        quorum,
        timeout: 60_000,
        clock: systemClock,
        call: (node) => {
          const a = answers[nodes.indexOf(node)]!;
          return a === 'hang' ? hung[nodes.indexOf(node)]!.promise : Promise.resolve(a);
        },
        judge,
      });
      const elapsed = performance.now() - started;
      // Release the hanging calls so their deadline timers are cancelled.
      for (const d of hung) d.resolve('no');
      await r.settled;
      return { r, elapsed };
    }

    it('fails a 2/2 split on 4 nodes at once instead of hanging', async () => {
      const { r, elapsed } = await round(['yes', 'yes', 'no', 'no'], 3);
      expect(r.ok).toBe(false);
      expect(elapsed).toBeLessThan(5_000);
    });

    it('fails a 1/1 split on 2 nodes at once instead of hanging', async () => {
      const { r, elapsed } = await round(['yes', 'no'], 2);
      expect(r.ok).toBe(false);
      expect(elapsed).toBeLessThan(5_000);
    });

    it('succeeds without waiting for hanging nodes once a quorum said yes', async () => {
      const { r, elapsed } = await round(['hang', 'yes', 'hang', 'yes', 'yes'], 3);
      expect(r.ok).toBe(true);
      expect(r.outcomes.map((o) => o.status)).toEqual([
        'pending',
        'acquired',
        'pending',
        'acquired',
        'acquired',
      ]);
      expect(elapsed).toBeLessThan(5_000);
    });

    it('fails without waiting for hanging nodes once a quorum is impossible', async () => {
      const { r, elapsed } = await round(['no', 'hang', 'no', 'hang', 'no'], 3);
      expect(r.ok).toBe(false);
      expect(elapsed).toBeLessThan(5_000);
    });
  });

  it('times out silent nodes at the deadline and aborts their calls with a NodeTimeoutError', async () => {
    const clock = new FakeClock();
    const nodes = labels(4);
    const signals: AbortSignal[] = [];
    const pending = fanOut<'yes' | 'no'>({
      nodes,
      quorum: 3,
      timeout: 250,
      clock,
      call: (node, signal) => {
        signals.push(signal);
        return nodes.indexOf(node) === 3 ? new Promise(() => {}) : Promise.resolve('yes');
      },
      judge,
    });
    const r = await pending;
    expect(r.ok).toBe(true);
    expect(signals[3]!.aborted).toBe(false);
    let settled = false;
    r.settled.then(() => {
      settled = true;
    });
    clock.advance(249);
    await flush();
    expect(settled).toBe(false);
    clock.advance(1);
    const { outcomes } = await r.settled;
    expect(signals[3]!.aborted).toBe(true);
    expect(signals[3]!.reason).toBeInstanceOf(NodeTimeoutError);
    expect(outcomes[3]).toMatchObject({ node: 'node3', status: 'timeout', latencyMs: 250 });
    expect(outcomes[3]!.cause).toBeInstanceOf(NodeTimeoutError);
    expect(String((outcomes[3]!.cause as Error).message)).toContain('node3');
  });

  it('counts a call that throws synchronously, and a reply the judge rejects, as errors', async () => {
    const clock = new FakeClock();
    const nodes = labels(3);
    const r = await fanOut<'yes' | 'no' | 'garbage'>({
      nodes,
      quorum: 3,
      timeout: 1000,
      clock,
      call: (node) => {
        const i = nodes.indexOf(node);
        if (i === 0) throw new Error('sync failure');
        return Promise.resolve(i === 1 ? 'garbage' : 'yes');
      },
      judge: (reply) => {
        if (reply === 'garbage') throw new Error('unreadable reply');
        return judge(reply);
      },
    });
    expect(r.ok).toBe(false);
    expect(r.outcomes.map((o) => o.status)).toEqual(['error', 'pending', 'pending']);
    const { outcomes } = await r.settled;
    expect(outcomes.map((o) => o.status)).toEqual(['error', 'error', 'acquired']);
    expect((r.outcomes[0]!.cause as Error).message).toBe('sync failure');
    expect((outcomes[1]!.cause as Error).message).toBe('unreadable reply');
  });

  it('records latency and the holder ttl reported by a node', async () => {
    const clock = new FakeClock();
    const nodes = labels(1);
    const answer = deferred<'yes' | 'no'>();
    const pending = fanOut<'yes' | 'no'>({
      nodes,
      quorum: 1,
      timeout: 1000,
      clock,
      call: () => answer.promise,
      judge,
    });
    clock.advance(37);
    answer.resolve('no');
    const r = await pending;
    expect(r.startedAt).toBe(0);
    expect(r.outcomes[0]).toEqual({
      node: 'node0',
      status: 'taken',
      latencyMs: 37,
      holderTtl: 100,
    });
  });
});

/** Outcomes from a compact description: `a` acquired, `t<ttl>` taken, `e` error, `o` timeout, `p` pending. */
function outcomes(...codes: string[]): NodeOutcome[] {
  return codes.map((c, i) => {
    const node = `n${i}`;
    if (c === 'a') return { node, status: 'acquired' };
    if (c === 'e') return { node, status: 'error', cause: new Error('down') };
    if (c === 'o') return { node, status: 'timeout' };
    if (c === 'p') return { node, status: 'pending' };
    if (c.startsWith('t')) {
      const ttl = c.slice(1);
      return ttl === '' ? { node, status: 'taken' } : { node, status: 'taken', holderTtl: +ttl };
    }
    throw new Error(`bad code ${c}`);
  });
}

describe('isInfrastructureFailure', () => {
  it('is true when more than N − quorum nodes failed or timed out', () => {
    expect(isInfrastructureFailure(outcomes('e', 'e', 'o', 'a', 'a'), 3)).toBe(true);
    expect(isInfrastructureFailure(outcomes('e', 'o', 'p', 'p', 'p'), 3)).toBe(false);
    expect(isInfrastructureFailure(outcomes('e', 'e', 'a', 'a'), 3)).toBe(true);
    expect(isInfrastructureFailure(outcomes('e', 'a'), 2)).toBe(true);
    expect(isInfrastructureFailure(outcomes('o'), 1)).toBe(true);
  });

  it('is false when the lock was taken on enough nodes to explain the failure', () => {
    expect(isInfrastructureFailure(outcomes('t1', 't1', 't1', 'e', 'e'), 3)).toBe(false);
    expect(isInfrastructureFailure(outcomes('a', 'a', 't5', 't5'), 3)).toBe(false);
    expect(isInfrastructureFailure(outcomes('t', 'e', 'p'), 2)).toBe(false);
  });

  it('does not count undecided (pending) nodes as failures', () => {
    expect(isInfrastructureFailure(outcomes('t', 't', 't', 'p', 'p'), 3)).toBe(false);
  });
});

describe('holderTtlOnQuorum', () => {
  it('is the (N − quorum + 1)-th largest holder ttl: when that many keys are gone, a quorum is free', () => {
    // 5 nodes, quorum 3: after the 3rd largest ttl, only 2 nodes can still hold it.
    expect(holderTtlOnQuorum(outcomes('t500', 't100', 't300', 't200', 't400'), 3)).toBe(300);
    expect(holderTtlOnQuorum(outcomes('t500', 't100', 't300', 't200', 't400'), 5)).toBe(500);
    expect(holderTtlOnQuorum(outcomes('t500', 't100', 't300', 't200', 't400'), 4)).toBe(400);
    expect(holderTtlOnQuorum(outcomes('t20', 't10'), 2)).toBe(20);
    expect(holderTtlOnQuorum(outcomes('t20', 'a', 't40', 't30'), 3)).toBe(30);
  });

  it('is undefined when too few nodes reported a holder to say', () => {
    expect(holderTtlOnQuorum(outcomes('t500', 'e', 'o', 'p', 'a'), 3)).toBeUndefined();
    expect(holderTtlOnQuorum(outcomes('t500', 't100', 'e', 'e', 'e'), 3)).toBeUndefined();
    expect(holderTtlOnQuorum(outcomes('t', 't', 't'), 2)).toBeUndefined();
  });

  it('ignores negative ttls (a key without expiry reports no usable ttl)', () => {
    expect(holderTtlOnQuorum(outcomes('t-1', 't100', 't200'), 2)).toBe(100);
    expect(holderTtlOnQuorum(outcomes('t-1', 't-1', 't200'), 2)).toBeUndefined();
  });
});

/**
 * An in-memory node on the fake clock. Calls wait behind `gate` in arrival
 * order, like commands on one connection behind a slow link.
 */
class MemoryNode implements LockNode {
  readonly keys = new Map<string, { value: string; until: number }>();
  readonly fences = new Map<string, number>();
  readonly log: string[] = [];
  #gate: Promise<void> = Promise.resolve();
  #open: (() => void) | undefined;

  constructor(
    readonly id: string,
    readonly clock: FakeClock,
  ) {}

  /** From now on calls wait until `open()`. */
  closeGate(): void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  open(): void {
    this.#open?.();
  }

  #get(key: string): string | undefined {
    const e = this.keys.get(key);
    if (!e || e.until <= this.clock.now()) return undefined;
    return e.value;
  }

  async acquire(req: AcquireRequest): Promise<AcquireReply> {
    await this.#gate;
    this.log.push(`acquire ${req.value}`);
    const n = req.keys.length / 4;
    const lockKeys = req.keys.slice(0, n);
    let holderTtl = 0;
    for (const k of lockKeys) {
      const v = this.#get(k);
      if (v !== undefined && !v.startsWith(req.prefix)) {
        holderTtl = Math.max(holderTtl, this.keys.get(k)!.until - this.clock.now());
      }
    }
    if (holderTtl > 0) return { ok: false, holderTtl, ticket: 0, rank: -1, turnTtl: 0, fence: 0 };
    for (const k of lockKeys)
      this.keys.set(k, { value: req.value, until: this.clock.now() + req.ttl });
    const fences = (req.fencing ? req.keys.slice(n, 2 * n) : []).map((f) => {
      const next = (this.fences.get(f) ?? 0) + 1;
      this.fences.set(f, next);
      return next;
    });
    return { ok: true, fences };
  }

  async extend(): Promise<boolean> {
    await this.#gate;
    return false;
  }

  async release(req: ReleaseRequest): Promise<number> {
    await this.#gate;
    const value = req.value;
    this.log.push(`release ${value}`);
    let n = 0;
    for (const k of req.keys.slice(0, req.keys.length / 3)) {
      if (this.#get(k) === value) {
        this.keys.delete(k);
        n++;
      }
    }
    return n;
  }

  async fenceSync(
    _keys: readonly string[],
    fenceKeys: readonly string[],
    _value: string,
    tokens: readonly number[],
  ): Promise<boolean> {
    await this.#gate;
    fenceKeys.forEach((f, i) => {
      this.fences.set(f, Math.max(this.fences.get(f) ?? 0, tokens[i]!));
    });
    return true;
  }

  async inspect(): Promise<InspectReply> {
    return { value: null, pttl: -2, fence: null };
  }

  async close(): Promise<void> {}
}

describe('acquire rounds over in-memory nodes', () => {
  const ttl = 1000;
  const drift = ttl * 0.01 + 2;

  function setup(n: number) {
    const clock = new FakeClock();
    const nodes = Array.from({ length: n }, (_, i) => new MemoryNode(`m${i}`, clock));
    const redlock = Redlock.fromNodes(
      nodes,
      { ttl, nodeTimeout: 10_000, retry: { minDelay: 1, maxDelay: 1 } },
      clock,
    );
    return { clock, nodes, redlock };
  }

  it('counts validity from the start of the round: ttl − elapsed − drift', async () => {
    const { clock, nodes, redlock } = setup(3);
    for (const node of nodes) node.closeGate();
    const pending = redlock.tryAcquire('r');
    await flush();
    clock.advance(300);
    for (const node of nodes) node.open();
    const lock = await pending;
    expect(lock).not.toBeNull();
    expect(lock!.remaining()).toBe(ttl - 300 - drift);
    clock.advance(100);
    expect(lock!.remaining()).toBe(ttl - 400 - drift);
  });

  it('never returns a lock whose validity ran out during the round, and undoes it', async () => {
    const { clock, nodes, redlock } = setup(3);
    for (const node of nodes) node.closeGate();
    const pending = redlock.tryAcquire('r');
    await flush();
    clock.advance(ttl - drift);
    for (const node of nodes) node.open();
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuorumError);
    expect((err as QuorumError).message).toMatch(/validity/);
    await flush();
    for (const node of nodes) {
      expect(node.log.filter((l) => l.startsWith('release')).length).toBeGreaterThan(0);
      expect(node.keys.size).toBe(0);
    }
  });

  it('undoes a yes that lands after a failed round was decided', async () => {
    const { clock, nodes, redlock } = setup(5);
    for (const node of nodes.slice(2)) {
      node.keys.set('quorumlock:{r}', { value: 'other', until: clock.now() + 60_000 });
    }
    nodes[0]!.closeGate();
    nodes[1]!.closeGate();
    expect(await redlock.tryAcquire('r')).toBeNull();
    nodes[0]!.open();
    nodes[1]!.open();
    await flush();
    await flush();
    for (const node of nodes.slice(0, 2)) {
      expect(node.log[0]).toMatch(/^acquire /);
      expect(node.log[1]).toBe(node.log[0]!.replace('acquire', 'release'));
      expect(node.keys.size).toBe(0);
    }
    for (const node of nodes.slice(2)) expect(node.keys.get('quorumlock:{r}')?.value).toBe('other');
  });

  it('decides a 2/2 split on 4 nodes as taken without waiting for the deadline', async () => {
    const { clock, nodes, redlock } = setup(4);
    for (const node of nodes.slice(2)) {
      node.keys.set('quorumlock:{r}', { value: 'other', until: clock.now() + 60_000 });
    }
    // The fake clock never moves: a round that waited for a deadline would never end.
    expect(await redlock.tryAcquire('r')).toBeNull();
    expect(clock.now()).toBe(0);
  });
});
