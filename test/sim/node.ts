/**
 * Simulated Redis masters. A SimServer is one redis-server: its keyspace, its
 * own clock (keys expire on the server's wall clock, as in Redis), and the
 * five lock scripts of src/redis/scripts re-implemented command by command so that every
 * decision matches the Lua exactly (test/integration/differential.test.ts
 * runs the same operations against real Redis to keep it so). A SimNode is
 * one client's connection to a server and implements LockNode exactly as
 * RedisNode does, over a link with its own delays and faults.
 *
 * Faults: a server can be stopped and started (data kept), crash with or
 * without its data and restart later, or be paused (requests queue and are
 * answered on resume, possibly long after the client gave up). A link can be
 * slowed per direction, reorder its replies, or be partitioned (requests lost,
 * replies lost, or both).
 */
import type {
  AcquireReply,
  AcquireRequest,
  InspectReply,
  LockNode,
  ReleaseRequest,
} from '../../src/redis/node.js';
import {
  acquireArgs,
  acquireReply,
  NodeUnavailableError,
  releaseArgs,
} from '../../src/redis/node.js';
import type { ClockSpec, Scheduler } from './clock.js';
import { SimClock } from './clock.js';
import type { Random } from './random.js';

/** The scripts a server knows, by the name of their .lua file. */
export type ScriptName = 'acquire' | 'extend' | 'release' | 'fence-sync' | 'inspect';

/** What a script returns, in the shape ioredis hands to RedisNode. */
export type RawReply = number | string | null | RawReply[];

/** An error reply from a script, like ioredis's ReplyError. */
export class SimReplyError extends Error {
  override name = 'ReplyError';
}

/** Raised to a caller whose connection broke while its call was in flight. */
export class ConnectionResetError extends Error {
  override name = 'ConnectionResetError';
}

/** Which directions of a link are cut. */
export type Partition = 'none' | 'requests' | 'replies' | 'both';

/** Delays of one client's link to one server, ms. */
export interface LinkSpec {
  /** Base one-way delay client → server. */
  readonly requestDelay: number;
  /** Base one-way delay server → client. */
  readonly replyDelay: number;
  /** Up to this much is added to each message, uniformly. */
  readonly jitter: number;
}

/** A key in the simulated keyspace. */
interface Entry {
  /** A string, or a sorted set (member -> score). */
  value: string | Map<string, number>;
  /** Absolute expiry on the server's wall clock in integer ms, or null for none. */
  expireAt: number | null;
}

/** One client's link to one server. */
class Link {
  partition: Partition = 'none';
  /** Extra delay added to both directions (a latency spike), ms. */
  extraDelay = 0;
  /** When true, replies do not keep their order. */
  reorder = false;
  lastRequestArrival = 0;
  lastReplyArrival = 0;
  /** True time of the last change of anything that can keep a message from arriving in time. */
  lastDisturbance = Number.NEGATIVE_INFINITY;
  readonly pending = new Set<PendingCall>();
  constructor(
    readonly client: string,
    public spec: LinkSpec,
  ) {}
}

interface PendingCall {
  readonly epoch: number;
  readonly reject: (err: Error) => void;
  done: boolean;
}

interface Subscription {
  readonly client: string;
  readonly listener: (value?: string) => void;
}

/** A live lock-key entry, for the I5 probe and for tests. */
export interface LiveEntry {
  readonly key: string;
  readonly value: string;
}

/** A key of the keyspace, as `SimServer.keyspace()` reports it. */
export type KeyState =
  | { readonly key: string; readonly type: 'string'; readonly value: string; readonly pttl: number }
  | {
      readonly key: string;
      readonly type: 'zset';
      readonly members: ReadonlyArray<readonly [string, number]>;
      readonly pttl: number;
    };

/** One simulated redis-server. */
export class SimServer {
  readonly id: string;
  /** The server's clock; keys expire on its wall clock. */
  readonly clock: SimClock;
  readonly #sched: Scheduler;
  readonly #random: Random;
  readonly #data = new Map<string, Entry>();
  readonly #links = new Map<string, Link>();
  readonly #subs = new Map<string, Set<Subscription>>();
  #up = true;
  /** Bumped by every crash or stop: requests sent before it never run. */
  #epoch = 0;
  /** Time frozen for the script that runs now, as Redis does inside a script. */
  #nowUs = 0;
  /** Scripts run so far, by name. */
  readonly executed: Record<ScriptName, number> = {
    acquire: 0,
    extend: 0,
    release: 0,
    'fence-sync': 0,
    inspect: 0,
  };
  /** Receives a line per script run and per fault, when set (SIM_TRACE=1 in world.ts). */
  trace: ((line: string) => void) | undefined;
  /** Called with every acquire request a client sends to this server, for the I5 bookkeeping. */
  onAcquireSent: ((client: string, req: AcquireRequest) => void) | undefined;

  constructor(sched: Scheduler, id: string, clock: ClockSpec, random: Random) {
    this.#sched = sched;
    this.id = id;
    this.clock = new SimClock(sched, id, clock);
    this.#random = random;
  }

  /** A client's connection to this server (one per client; calling again returns a new view of the same link). */
  connect(client: string, spec: LinkSpec): SimNode {
    let link = this.#links.get(client);
    if (!link) {
      link = new Link(client, spec);
      this.#links.set(client, link);
    }
    return new SimNode(this, link);
  }

  // ---------------------------------------------------------------------------
  // Faults

  /** True while the process runs (it may still be paused). */
  get up(): boolean {
    return this.#up;
  }

  /** True while the process is frozen. */
  get paused(): boolean {
    return this.#sched.isPaused(this.id);
  }

  /**
   * Kills the process: calls in flight fail (their connections are reset),
   * requests queued on a paused process are lost. With `keepData` the
   * keyspace survives (appendfsync always); without it the server comes back
   * empty.
   */
  crash(keepData: boolean): void {
    if (!this.#up) return;
    this.#up = false;
    this.#epoch++;
    this.#sched.discardHeld(this.id);
    this.#sched.resume(this.id);
    if (!keepData) this.#data.clear();
    for (const link of this.#links.values()) {
      this.#disturb(link);
      for (const call of link.pending) {
        link.pending.delete(call);
        if (link.partition === 'replies' || link.partition === 'both') continue;
        // The reset reaches the client like any other packet.
        this.#sched.after(this.#delay(link, 'reply'), link.client, () => {
          if (call.done) return;
          call.done = true;
          call.reject(new ConnectionResetError(`${this.id}: connection reset`));
        });
      }
    }
  }

  /** Starts a crashed or stopped process again. */
  restart(): void {
    if (this.#up) return;
    this.#up = true;
    for (const link of this.#links.values()) this.#disturb(link);
  }

  /** Freezes the process (SIGSTOP): requests queue, its clock keeps running. */
  pause(): void {
    this.#sched.pause(this.id);
    for (const link of this.#links.values()) this.#disturb(link);
  }

  /** Unfreezes it: queued requests run now, in order, on the current clock. */
  resume(): void {
    this.#sched.resume(this.id);
    for (const link of this.#links.values()) this.#disturb(link);
  }

  /** Cuts the link to `client` in the given directions ('none' heals it). */
  partition(client: string, mode: Partition): void {
    const link = this.#link(client);
    link.partition = mode;
    this.#disturb(link);
  }

  /** Adds `ms` to both directions of the link to `client` (0 ends the spike). */
  setExtraDelay(client: string, ms: number): void {
    const link = this.#link(client);
    link.extraDelay = ms;
    this.#disturb(link);
  }

  /** Lets replies to `client` overtake each other. */
  setReorder(client: string, on: boolean): void {
    const link = this.#link(client);
    link.reorder = on;
    this.#disturb(link);
  }

  /**
   * True when, over the whole of [from, now], the server was up and not
   * paused and its link to `client` was neither cut nor slowed by a fault.
   */
  reachableSince(client: string, from: number): boolean {
    const link = this.#links.get(client);
    if (!link || !this.#up || this.paused || link.partition !== 'none' || link.extraDelay > 0)
      return false;
    return link.lastDisturbance < from;
  }

  /** Marks every link of `client` disturbed now (the client itself was paused or resumed). */
  disturbClient(client: string): void {
    const link = this.#links.get(client);
    if (link) this.#disturb(link);
  }

  /** Live (unexpired) string keys whose name does not end in `:fence`, read without side effects. */
  liveLockEntries(): LiveEntry[] {
    const nowMs = Math.floor(this.clock.wallNow());
    const out: LiveEntry[] = [];
    for (const [key, e] of this.#data) {
      if (key.endsWith(':fence') || typeof e.value !== 'string') continue;
      if (e.expireAt !== null && nowMs > e.expireAt) continue;
      out.push({ key, value: e.value });
    }
    return out;
  }

  /**
   * Every live key, read without side effects: strings with their value,
   * sorted sets as [member, score] pairs in Redis order, and the remaining
   * ttl in ms (-1 for a key that never expires).
   */
  keyspace(): KeyState[] {
    const nowMs = Math.floor(this.clock.wallNow());
    const out: KeyState[] = [];
    for (const [key, e] of this.#data) {
      if (e.expireAt !== null && nowMs > e.expireAt) continue;
      const pttl = e.expireAt === null ? -1 : Math.max(0, e.expireAt - nowMs);
      if (typeof e.value === 'string') out.push({ key, type: 'string', value: e.value, pttl });
      else {
        const z = e.value;
        const members = [...z.entries()].sort((a, b) => a[1] - b[1] || compareBytes(a[0], b[0]));
        out.push({ key, type: 'zset', members, pttl });
      }
    }
    return out.sort((a, b) => compareBytes(a.key, b.key));
  }

  // ---------------------------------------------------------------------------
  // Transport

  /** Sends one script call over `link`; resolves with its raw reply. */
  call(link: Link, script: ScriptName, keys: readonly string[], args: readonly string[]) {
    if (!this.#up) {
      // ioredis fails calls at once while its connection is down.
      return Promise.reject(new NodeUnavailableError(`${this.id} is not connected (reconnecting)`));
    }
    return new Promise<RawReply>((resolve, reject) => {
      const call: PendingCall = { epoch: this.#epoch, reject, done: false };
      link.pending.add(call);
      if (link.partition === 'requests' || link.partition === 'both') return;
      const arrival = Math.max(
        this.#sched.now + this.#delay(link, 'request'),
        link.lastRequestArrival,
      );
      link.lastRequestArrival = arrival;
      this.#sched.at(arrival, this.id, () => {
        if (!this.#up || this.#epoch !== call.epoch) return;
        let reply: RawReply | undefined;
        let error: Error | undefined;
        try {
          reply = this.eval(script, keys, args);
        } catch (err) {
          error = err as Error;
        }
        link.pending.delete(call);
        this.trace?.(
          `${link.client} ${script} ${JSON.stringify(keys)} ${JSON.stringify(args)} -> ${
            error ? error.message : JSON.stringify(reply)
          }`,
        );
        if (link.partition === 'replies' || link.partition === 'both') return;
        let at = this.#sched.now + this.#delay(link, 'reply');
        if (!link.reorder) at = Math.max(at, link.lastReplyArrival);
        link.lastReplyArrival = Math.max(link.lastReplyArrival, at);
        this.#sched.at(at, link.client, () => {
          if (call.done) return;
          call.done = true;
          if (error) reject(error);
          else resolve(reply as RawReply);
        });
      });
    });
  }

  /** Subscribes `listener` to `channel` for `link`'s client; resolves once active. */
  subscribe(link: Link, channel: string, listener: (value?: string) => void, shared: AbortSignal) {
    if (!this.#up) {
      return Promise.reject(new NodeUnavailableError(`${this.id} is not connected (reconnecting)`));
    }
    if (shared.aborted) return Promise.reject(shared.reason);
    // As raceSignal does: listen to a derived signal, not to the instance's shared one.
    const signal = AbortSignal.any([shared]);
    return new Promise<() => void>((resolve, reject) => {
      const sub: Subscription = { client: link.client, listener };
      const unsubscribe = () => this.#subs.get(channel)?.delete(sub);
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        unsubscribe();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      if (link.partition === 'requests' || link.partition === 'both') return;
      this.#sched.after(this.#delay(link, 'request'), this.id, () => {
        if (settled || !this.#up) return;
        let set = this.#subs.get(channel);
        if (!set) {
          set = new Set();
          this.#subs.set(channel, set);
        }
        set.add(sub);
        if (link.partition === 'replies' || link.partition === 'both') return;
        this.#sched.after(this.#delay(link, 'reply'), link.client, () => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          resolve(unsubscribe);
        });
      });
    });
  }

  /** Drops every subscription of `client` (its connection closed). */
  unsubscribeAll(client: string): void {
    for (const set of this.#subs.values()) {
      for (const sub of set) if (sub.client === client) set.delete(sub);
    }
  }

  #publish(channel: string, message: string): number {
    const set = this.#subs.get(channel);
    if (!set) return 0;
    for (const sub of set) {
      const link = this.#links.get(sub.client);
      if (!link || link.partition === 'replies' || link.partition === 'both') continue;
      this.#sched.after(this.#delay(link, 'reply'), sub.client, () => sub.listener(message));
    }
    return set.size;
  }

  #delay(link: Link, dir: 'request' | 'reply'): number {
    const base = dir === 'request' ? link.spec.requestDelay : link.spec.replyDelay;
    return base + link.extraDelay + this.#random.next() * link.spec.jitter;
  }

  #link(client: string): Link {
    const link = this.#links.get(client);
    if (!link) throw new Error(`${this.id} has no link to ${client}`);
    return link;
  }

  #disturb(link: Link): void {
    link.lastDisturbance = this.#sched.now;
  }

  // ---------------------------------------------------------------------------
  // The scripts, command by command as the .lua files issue them.

  /**
   * Runs one script at the server's current time, frozen for the whole
   * script as Redis does. Throws SimReplyError where Redis would reply with an
   * error; writes made before the error stay, as in Redis.
   */
  eval(script: ScriptName, keys: readonly string[], args: readonly string[]): RawReply {
    this.#nowUs = Math.floor(this.clock.wallNow() * 1000);
    this.executed[script]++;
    switch (script) {
      case 'acquire':
        return this.#acquire(keys, args);
      case 'extend':
        return this.#extend(keys, args);
      case 'release':
        return this.#release(keys, args);
      case 'fence-sync':
        return this.#fenceSync(keys, args);
      case 'inspect':
        return [this.#get(keys[0]!), this.#pttl(keys[0]!), this.#get(keys[1]!)];
    }
  }

  /** Drops queue entries whose lease ran out (acquire.lua's purge, release.lua's inline copy). */
  #purge(q: string, e: string): void {
    const dead = this.#zrangeByScore(e, this.#nowMs(), 16);
    if (dead.length > 0) {
      this.#zrem(q, dead);
      this.#zrem(e, dead);
    }
  }

  /** `string.match(member, '^[^.]+')`: a waiter's instance id, whose channel gets its notices. */
  #instanceOf(member: string): string {
    const m = /^[^.]+/.exec(member);
    if (!m) throw new SimReplyError('ERR attempt to concatenate a nil value');
    return m[0];
  }

  /**
   * INCR a fence counter; a missing one (INCR gave 1) is seeded from TIME in
   * µs, or from the proposal when it is above TIME by at most the window, and
   * kept for `retention`; an existing one is kept for `retention` again.
   */
  #bump(fkey: string, proposalArg: string | undefined, retention: string | undefined): number {
    let f = this.#incr(fkey);
    if (f === 1) {
      const us = this.#nowUs;
      const proposal = luaToNumber(proposalArg);
      if (proposal === null) throw new SimReplyError('ERR attempt to compare nil with number');
      f = us;
      if (proposal > us && proposal <= us + SEED_WINDOW_US) f = proposal;
      if (retention === undefined) throw new SimReplyError(luaArgError);
      this.#setPx(fkey, f.toFixed(0), retention);
    } else {
      if (retention === undefined) throw new SimReplyError(luaArgError);
      this.#pexpire(fkey, retention);
    }
    return f;
  }

  /**
   * Hands free lock key `k` to `head`, first in queue `q`: the lock itself
   * ('<prefix>.g', fence advanced) to a waiter that can take it, else a turn
   * ('~turn~<head>' for a member ending in '.t'); reserved for `grace` (as
   * the script passes it: a Lua number in acquire.lua, a string in
   * release.lua). Tells `head` when `tell`, and always the waiter now first.
   * Returns the fence handed over (0 for a turn). acquire.lua's and
   * release.lua's `hand`.
   */
  #hand(
    keys: { k: string; f: string; q: string; e: string },
    head: string,
    tell: boolean,
    grace: string,
    channel: string,
    proposal: string | undefined,
    retention: string | undefined,
  ): number {
    // ZADD e LT now+grace head: the head keeps its place, its lease shrinks to the grace.
    const until = this.#nowMs() + luaToNumber(grace)!;
    const lease = this.#zscore(keys.e, head);
    if (lease === null || until < lease) this.#zadd(keys.e, until, head);
    const to = channel + this.#instanceOf(head);
    let f = 0;
    if (head.endsWith('.t')) {
      this.#setPx(keys.k, `~turn~${head}`, grace);
      if (tell) this.#publish(to, `${head} ${keys.k}`);
    } else {
      const own = /^[^.]+\.(.+)$/.exec(head);
      if (!own) throw new SimReplyError('ERR attempt to concatenate a nil value');
      this.#setPx(keys.k, `${own[1]}.g`, grace);
      f = this.#bump(keys.f, proposal, retention);
      if (tell) this.#publish(to, `${head} ${keys.k} g ${f.toFixed(0)} ${grace}`);
    }
    const next = this.#zrange(keys.q, 1, 1)[0];
    if (next !== undefined) {
      this.#publish(channel + this.#instanceOf(next), `${next} ${keys.k} ${grace}`);
    }
    return f;
  }

  /** acquire.lua's place(): the waiter at its ticket in queue `q`, and back in it (`back`). */
  #place(
    { q, e }: { q: string; e: string },
    member: string,
    argv: readonly string[],
    back: boolean,
  ): void {
    const ticket = luaToNumber(argv[6]);
    const mine = this.#zscore(q, member);
    const nilCompare = 'ERR attempt to compare nil with number';
    if (mine !== null) {
      if (ticket === null) throw new SimReplyError(nilCompare);
      if (ticket > mine) this.#zadd(q, ticket, member);
    } else if (back) {
      if (ticket === null) throw new SimReplyError(nilCompare);
      if (ticket > 0) {
        const lease = luaToNumber(argv[7]);
        if (lease === null)
          throw new SimReplyError(
            "ERR attempt to perform arithmetic on local 'lease' (a nil value)",
          );
        this.#zadd(q, ticket, member);
        this.#zadd(e, this.#nowMs() + lease, member);
        this.#pexpire(q, luaNumberArg(lease));
        this.#pexpire(e, luaNumberArg(lease));
      }
    }
  }

  // acquire.lua
  #acquire(keys: readonly string[], argv: readonly string[]): RawReply {
    const n = luaForLimit(argv[3]);
    const prefix = argv[1]!;
    const member = argv[5] ?? '';
    const mark = member !== '' ? `~turn~${member}` : null;
    const graceNum = luaToNumber(argv[8]);
    const channel = argv[9] ?? '';
    const handable = member !== '' && n === 1 && !member.endsWith('.t');
    const granted = `${prefix}.g`;
    const at = (i: number) => ({
      k: keys[i]!,
      f: keys[n + i]!,
      q: keys[2 * n + i]!,
      e: keys[3 * n + i]!,
    });
    const hand = (i: number, head: string, tell: boolean) => {
      if (graceNum === null) throw new SimReplyError(luaArgError);
      return this.#hand(at(i), head, tell, luaNumberArg(graceNum), channel, argv[10], argv[11]);
    };

    // The waiter already holds the lock it was handed: report it, renewing
    // only its lease, to the grace.
    if (handable && this.#get(keys[0]!) === granted) {
      const e = keys[3 * n]!;
      const lease = this.#zscore(e, member);
      if (lease !== null) {
        if (graceNum === null) throw new SimReplyError(luaArgError);
        const until = this.#nowMs() + graceNum;
        if (lease < until) this.#zadd(e, until, member);
      }
      this.#place(at(0), member, argv, false);
      const f = this.#get(keys[n]!);
      return [2, this.#pttl(keys[0]!), luaInteger(luaToNumber(f ?? '') ?? 0)];
    }

    let taken = false;
    let holderTtl = -1;
    let turnTtl = 0;
    for (let i = 0; i < n; i++) {
      const v = this.#get(at(i).k);
      // A leftover of a later round of this acquisition: this request is stale.
      if (v !== null && laterRound(prefix, argv[0]!, v)) return [0, -1, 0, -1, 0];
      if (v !== null && v !== mark && !v.startsWith(prefix)) {
        taken = true;
        // A key at its expiry instant is in the way for one more millisecond.
        const remaining = this.#pttl(at(i).k);
        const pttl = remaining === 0 ? 1 : remaining;
        // For a waiter, turns and handed-over locks are not holders; for a caller that does not wait they are.
        if (member !== '' && (v.startsWith('~turn~') || v.endsWith('.g'))) {
          if (pttl > turnTtl) turnTtl = pttl;
        } else if (pttl > holderTtl) holderTtl = pttl;
      }
    }

    const queued = new Set<number>();
    if (!taken) {
      for (let i = 0; i < n; i++) {
        const { k, q, e } = at(i);
        // A waiter with a ticket counts as queued even where its entry is gone.
        if (!this.#exists(q)) {
          if (member === '') continue;
          const t = luaToNumber(argv[6]);
          if (t === null) throw new SimReplyError('ERR attempt to compare nil with number');
          if (!(t > 0)) continue;
        }
        queued.add(i);
        if (member === '') {
          taken = true;
        } else if (this.#get(k) === null) {
          this.#purge(q, e);
          // A waiter with a ticket goes in its place before a free key is handed on.
          this.#place({ q, e }, member, argv, true);
          const head = this.#zrange(q, 0, 0)[0];
          if (head !== undefined && head !== member) {
            // A free key with someone queued ahead: it goes to the head.
            hand(i, head, true);
            taken = true;
            if (graceNum! > turnTtl) turnTtl = graceNum!;
          } else if (head !== undefined && handable) {
            // First in line at a free key: taken as handed over.
            const f = hand(i, member, false);
            if (graceNum === null) throw new SimReplyError(luaArgError);
            return [2, luaInteger(graceNum), luaInteger(f)];
          }
        }
      }
    }

    if (taken) {
      if (member === '') return [0, holderTtl, 0, -1, 0];
      // Queue (or refresh) this waiter with one ticket on every resource: a new
      // waiter (proposal 0) behind every ticket queued; one with a ticket keeps it.
      const proposal = luaToNumber(argv[6]);
      let ticket = proposal;
      const nilCompare = 'ERR attempt to compare nil with number';
      for (let i = 0; i < n; i++) {
        const { q, e } = at(i);
        this.#purge(q, e);
        const mine = this.#zscore(q, member);
        if (mine !== null) {
          if (ticket === null) throw new SimReplyError(nilCompare);
          if (mine > ticket) ticket = mine;
        } else if (proposal === 0) {
          const last = this.#zrange(q, -1, -1)[0];
          if (last !== undefined) {
            if (ticket === null) throw new SimReplyError(nilCompare);
            const score = this.#zscore(q, last)!;
            if (score + 1 > ticket) ticket = score + 1;
          }
        }
      }
      if (ticket === null) throw new SimReplyError(nilCompare);
      if (ticket < 1) ticket = 1;
      const lease = luaToNumber(argv[7]);
      if (lease === null)
        throw new SimReplyError("ERR attempt to perform arithmetic on local 'lease' (a nil value)");
      const until = this.#nowMs() + lease;
      let rank = 0;
      for (let i = 0; i < n; i++) {
        const { q, e } = at(i);
        this.#zadd(q, ticket, member);
        this.#zadd(e, until, member);
        this.#pexpire(q, luaNumberArg(lease));
        this.#pexpire(e, luaNumberArg(lease));
        // ZRANK of a member just added; false (an error on compare) if the PEXPIRE deleted the queue.
        const r = this.#zrank(q, member);
        if (r === null) throw new SimReplyError('ERR attempt to compare number with boolean');
        if (r > rank) rank = r;
      }
      let fence = 0;
      if (handable) fence = luaToNumber(this.#get(keys[n]!) ?? '') ?? 0;
      return [0, holderTtl, luaInteger(ticket), rank, turnTtl, luaInteger(fence)];
    }

    const reply: RawReply[] = [1];
    for (let i = 0; i < n; i++) {
      const { k, q, e } = at(i);
      this.#setPx(k, argv[0]!, argv[2]!);
      if (queued.has(i)) {
        this.#zrem(q, [member]);
        this.#zrem(e, [member]);
      }
    }
    if (argv[4] === '1') {
      for (let i = 0; i < n; i++) reply.push(luaInteger(this.#bump(at(i).f, argv[10], argv[11])));
    }
    return reply;
  }

  // extend.lua
  #extend(keys: readonly string[], argv: readonly string[]): RawReply {
    const ttl = luaToNumber(argv[1]);
    for (const key of keys) if (this.#get(key) !== argv[0]) return 0;
    if (ttl === null) throw new SimReplyError('ERR attempt to compare number with nil');
    for (const key of keys) if (this.#pttl(key) < ttl) this.#pexpire(key, luaNumberArg(ttl));
    return 1;
  }

  // release.lua
  #release(keys: readonly string[], argv: readonly string[]): RawReply {
    const quarter = keys.length / 4;
    // `for i = 1, n` with a fractional n runs floor(n) times, but KEYS[n + i] is then nil.
    const n = Math.floor(quarter);
    const leaving = argv[1] ?? '';
    const grace = argv[2];
    const channel = argv[3] ?? '';
    const restore = argv[4];
    let released = 0;
    for (let i = 0; i < n; i++) {
      if (!Number.isInteger(quarter)) throw new SimReplyError(luaArgError);
      const at = { k: keys[i]!, f: keys[n + i]!, q: keys[2 * n + i]!, e: keys[3 * n + i]! };
      const queued = this.#exists(at.q);
      if (queued && leaving !== '') {
        this.#zrem(at.q, [leaving]);
        this.#zrem(at.e, [leaving]);
      }
      if (this.#get(at.k) === argv[0]) {
        released++;
        if (restore === undefined || grace === undefined) throw new SimReplyError(luaArgError);
        if (restore !== '') {
          this.#setPx(at.k, restore, grace);
        } else {
          let head: string | undefined;
          if (queued) {
            this.#purge(at.q, at.e);
            head = this.#zrange(at.q, 0, 0)[0];
          }
          if (head !== undefined) this.#hand(at, head, true, grace, channel, argv[5], argv[6]);
          else this.#data.delete(at.k);
        }
      }
    }
    return released;
  }

  // fence-sync.lua
  #fenceSync(keys: readonly string[], argv: readonly string[]): RawReply {
    const n = Math.floor(keys.length / 2);
    const retention = argv[Math.floor(keys.length / 2) + 1];
    let held = 1;
    for (let i = 0; i < n; i++) {
      const t = luaToNumber(argv[i + 1]);
      const cur = this.#get(keys[n + i]!);
      let f: number | null = cur !== null ? luaToNumber(cur) : this.#nowUs;
      if (f === null && t === null)
        throw new SimReplyError('ERR attempt to compare two nil values');
      if (f === null) throw new SimReplyError('ERR attempt to compare nil with number');
      if (t === null) throw new SimReplyError('ERR attempt to compare number with nil');
      if (f < t) f = t;
      if (retention === undefined) throw new SimReplyError(luaArgError);
      if (cur === null || f !== luaToNumber(cur))
        this.#setPx(keys[n + i]!, f.toFixed(0), retention);
      else this.#pexpire(keys[n + i]!, retention);
      if (this.#get(keys[i]!) !== argv[0]) held = 0;
    }
    return held;
  }

  // Redis commands on the frozen clock. Integer ms, like Redis's mstime().

  #nowMs(): number {
    return Math.floor(this.#nowUs / 1000);
  }

  /** The live entry of `key`, expiring it lazily as Redis does (expired once now > expireAt). */
  #entry(key: string): Entry | null {
    const e = this.#data.get(key);
    if (!e) return null;
    if (e.expireAt !== null && this.#nowMs() > e.expireAt) {
      this.#data.delete(key);
      return null;
    }
    return e;
  }

  /** GET: a string value, null when missing; WRONGTYPE on a sorted set. */
  #get(key: string): string | null {
    const e = this.#entry(key);
    if (!e) return null;
    if (typeof e.value !== 'string') throw new SimReplyError(WRONGTYPE);
    return e.value;
  }

  #exists(key: string): boolean {
    return this.#entry(key) !== null;
  }

  #pttl(key: string): number {
    const e = this.#entry(key);
    if (!e) return -2;
    if (e.expireAt === null) return -1;
    return Math.max(0, e.expireAt - this.#nowMs());
  }

  #setPx(key: string, value: string, px: string): void {
    const ms = parseRedisInteger(px);
    if (ms === null) throw new SimReplyError('ERR value is not an integer or out of range');
    if (ms <= 0) throw new SimReplyError("ERR invalid expire time in 'set' command");
    this.#data.set(key, { value, expireAt: this.#nowMs() + ms });
  }

  #incr(key: string): number {
    const e = this.#entry(key);
    if (e && typeof e.value !== 'string') throw new SimReplyError(WRONGTYPE);
    const current = parseRedisInteger(e ? (e.value as string) : '0');
    if (current === null) throw new SimReplyError('ERR value is not an integer or out of range');
    const next = current + 1;
    this.#data.set(key, { value: String(next), expireAt: e?.expireAt ?? null });
    return next;
  }

  #pexpire(key: string, ms: string): void {
    const n = parseRedisInteger(ms);
    if (n === null) throw new SimReplyError('ERR value is not an integer or out of range');
    const e = this.#entry(key);
    if (!e) return;
    if (n <= 0) {
      this.#data.delete(key);
      return;
    }
    e.expireAt = this.#nowMs() + n;
  }

  /** The sorted set at `key` (null when missing); WRONGTYPE on a string. */
  #zset(key: string): Map<string, number> | null {
    const e = this.#entry(key);
    if (!e) return null;
    if (typeof e.value === 'string') throw new SimReplyError(WRONGTYPE);
    return e.value;
  }

  /** Members in Redis order: by score, then by member bytes. */
  #sorted(z: Map<string, number>): string[] {
    return [...z.entries()].sort((a, b) => a[1] - b[1] || compareBytes(a[0], b[0])).map(([m]) => m);
  }

  #zadd(key: string, score: number, member: string): void {
    let z = this.#zset(key);
    if (!z) {
      z = new Map();
      this.#data.set(key, { value: z, expireAt: null });
    }
    z.set(member, score);
  }

  #zrem(key: string, members: readonly string[]): void {
    const z = this.#zset(key);
    if (!z) return;
    for (const m of members) z.delete(m);
    // Redis deletes a sorted set (and its expiry) once it is empty.
    if (z.size === 0) this.#data.delete(key);
  }

  #zrank(key: string, member: string): number | null {
    const z = this.#zset(key);
    if (!z?.has(member)) return null;
    return this.#sorted(z).indexOf(member);
  }

  #zscore(key: string, member: string): number | null {
    return this.#zset(key)?.get(member) ?? null;
  }

  /** ZRANGE key start stop (rank indexes, negative from the end). */
  #zrange(key: string, start: number, stop: number): string[] {
    const z = this.#zset(key);
    if (!z) return [];
    const all = this.#sorted(z);
    const len = all.length;
    const from = Math.max(0, start < 0 ? len + start : start);
    const to = Math.min(len - 1, stop < 0 ? len + stop : stop);
    return from > to ? [] : all.slice(from, to + 1);
  }

  /** ZRANGEBYSCORE key -inf max LIMIT 0 count. */
  #zrangeByScore(key: string, max: number, count: number): string[] {
    const z = this.#zset(key);
    if (!z) return [];
    return this.#sorted(z)
      .filter((m) => z.get(m)! <= max)
      .slice(0, count);
  }
}

/** How far above server time (µs) acquire.lua takes a client's fence seed proposal. */
export const SEED_WINDOW_US = 1_000_000;

const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';
const luaArgError = 'ERR Lua redis lib command arguments must be strings or integers';

/** Byte-wise comparison of two strings, as Redis orders equal-score members. */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** How Redis turns a Lua number in a script's reply into an integer reply (truncation). */
function luaInteger(n: number): number {
  return Math.trunc(n);
}

/** One client's connection to a SimServer: a LockNode built like RedisNode. */
export class SimNode implements LockNode {
  readonly id: string;
  readonly server: SimServer;
  readonly #link: Link;

  constructor(server: SimServer, link: Link) {
    this.server = server;
    this.#link = link;
    this.id = server.id;
  }

  /** The client this connection belongs to. */
  get client(): string {
    return this.#link.client;
  }

  async acquire(req: AcquireRequest, _signal: AbortSignal): Promise<AcquireReply> {
    this.server.onAcquireSent?.(this.#link.client, req);
    return acquireReply(await this.#run('acquire', req.keys, acquireArgs(req)));
  }

  async extend(keys: readonly string[], value: string, ttl: number, _signal: AbortSignal) {
    return (await this.#run('extend', keys, [value, String(ttl)])) === 1;
  }

  async release(req: ReleaseRequest, _signal: AbortSignal) {
    return Number(await this.#run('release', req.keys, releaseArgs(req)));
  }

  async fenceSync(
    keys: readonly string[],
    fenceKeys: readonly string[],
    value: string,
    tokens: readonly number[],
    retention: number,
    _signal: AbortSignal,
  ) {
    const args = [value, ...tokens.map((t) => String(t)), String(retention)];
    return (await this.#run('fence-sync', [...keys, ...fenceKeys], args)) === 1;
  }

  async inspect(key: string, fenceKey: string, _signal: AbortSignal): Promise<InspectReply> {
    const [value, pttl, fence] = (await this.#run('inspect', [key, fenceKey], [])) as [
      string | null,
      number,
      string | null,
    ];
    return {
      value: value ?? null,
      pttl: Number(pttl),
      fence: fence == null ? null : Number(fence),
    };
  }

  subscribe(
    channel: string,
    listener: (value?: string) => void,
    signal: AbortSignal,
  ): Promise<() => void> {
    return this.server.subscribe(this.#link, channel, listener, signal);
  }

  async close(): Promise<void> {
    this.server.unsubscribeAll(this.#link.client);
  }

  #run(script: ScriptName, keys: readonly string[], args: readonly string[]): Promise<RawReply> {
    return this.server.call(this.#link, script, keys, args);
  }
}

/**
 * True when `v` is the value of a round of the acquisition `prefix` later than
 * that of `value` (`<prefix>.<round>`): the request carrying `value` is stale
 * (acquire.lua and permits.lua refuse it).
 */
export function laterRound(prefix: string, value: string, v: string): boolean {
  const round = luaToNumber(value.slice(prefix.length + 1));
  if (round === null || !v.startsWith(`${prefix}.`)) return false;
  const r = luaToNumber(v.slice(prefix.length + 1));
  return r !== null && r > round;
}

/** Lua's tonumber on a string: null (nil) when it is not a number. */
export function luaToNumber(s: string | undefined): number | null {
  if (s === undefined || s.trim() === '') return null;
  const n = Number(s);
  return Number.isNaN(n) ? null : n;
}

/** The iteration count of `for i = 1, tonumber(s)`. */
function luaForLimit(s: string | undefined): number {
  const n = luaToNumber(s);
  if (n === null) throw new SimReplyError("ERR 'for' limit must be a number");
  return Math.max(0, Math.floor(n));
}

/** How a Lua number passed to redis.call becomes a command argument. */
function luaNumberArg(n: number): string {
  return Number.isInteger(n) ? n.toFixed(0) : String(n);
}

/** Redis's strict string-to-int64 parse (no spaces, no '+', no leading zeros); null when invalid. */
function parseRedisInteger(s: string): number | null {
  if (!/^(0|-?[1-9][0-9]*)$/.test(s)) return null;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : null;
}
