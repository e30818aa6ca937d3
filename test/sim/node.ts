/**
 * Simulated Redis masters. A SimServer is one redis-server: its keyspace, its
 * own clock (keys expire on the server's wall clock, as in Redis), and the
 * five scripts of src/scripts re-implemented command by command so that every
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
import type { AcquireReply, AcquireRequest, InspectReply, LockNode } from '../../src/node.js';
import { NodeUnavailableError } from '../../src/node.js';
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
  value: string;
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
      if (key.endsWith(':fence')) continue;
      if (e.expireAt !== null && nowMs > e.expireAt) continue;
      out.push({ key, value: e.value });
    }
    return out;
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
  subscribe(link: Link, channel: string, listener: (value?: string) => void, signal: AbortSignal) {
    if (!this.#up) {
      return Promise.reject(new NodeUnavailableError(`${this.id} is not connected (reconnecting)`));
    }
    if (signal.aborted) return Promise.reject(signal.reason);
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

  // acquire.lua
  #acquire(keys: readonly string[], argv: readonly string[]): RawReply {
    const n = luaForLimit(argv[3]);
    const prefix = argv[1]!;
    let taken = false;
    let holderTtl = 0;
    for (let i = 0; i < n; i++) {
      const v = this.#get(keys[i]!);
      if (v !== null && !v.startsWith(prefix)) {
        taken = true;
        const pttl = this.#pttl(keys[i]!);
        if (pttl > holderTtl) holderTtl = pttl;
      }
    }
    if (taken) return [0, holderTtl];
    const reply: RawReply[] = [1];
    for (let i = 0; i < n; i++) this.#setPx(keys[i]!, argv[0]!, argv[2]!);
    if (argv[4] === '1') {
      let now: number | undefined;
      for (let i = 0; i < n; i++) {
        const fkey = keys[n + i]!;
        let f: number;
        if (this.#get(fkey) !== null) {
          f = this.#incr(fkey);
        } else {
          now ??= this.#nowUs;
          f = now;
          this.#set(fkey, f.toFixed(0));
        }
        reply.push(f);
      }
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
    let deleted = 0;
    for (let i = 0; i < keys.length; i++) {
      if (this.#get(keys[i]!) === argv[0]) {
        this.#data.delete(keys[i]!);
        const channel = argv[i + 1];
        if (channel !== '') {
          if (channel === undefined) {
            throw new SimReplyError(
              'ERR Lua redis lib command arguments must be strings or integers',
            );
          }
          this.#publish(channel, argv[0]!);
        }
        deleted++;
      }
    }
    return deleted;
  }

  // fence-sync.lua
  #fenceSync(keys: readonly string[], argv: readonly string[]): RawReply {
    const n = Math.floor(keys.length / 2);
    let held = 1;
    let now: number | undefined;
    for (let i = 0; i < n; i++) {
      const t = luaToNumber(argv[i + 1]);
      const cur = this.#get(keys[n + i]!);
      let f: number | null;
      if (cur !== null) {
        f = luaToNumber(cur);
      } else {
        now ??= this.#nowUs;
        f = now;
      }
      if (t === null || f === null)
        throw new SimReplyError('ERR attempt to compare nil with number');
      if (f < t) f = t;
      if (cur === null || f !== luaToNumber(cur)) this.#set(keys[n + i]!, f.toFixed(0));
      if (this.#get(keys[i]!) !== argv[0]) held = 0;
    }
    return held;
  }

  // Redis commands on the frozen clock. Integer ms, like Redis's mstime().

  #nowMs(): number {
    return Math.floor(this.#nowUs / 1000);
  }

  /** GET, expiring the key lazily as Redis does (expired once now > expireAt). */
  #get(key: string): string | null {
    const e = this.#data.get(key);
    if (!e) return null;
    if (e.expireAt !== null && this.#nowMs() > e.expireAt) {
      this.#data.delete(key);
      return null;
    }
    return e.value;
  }

  #pttl(key: string): number {
    if (this.#get(key) === null) return -2;
    const e = this.#data.get(key)!;
    if (e.expireAt === null) return -1;
    return Math.max(0, e.expireAt - this.#nowMs());
  }

  #set(key: string, value: string): void {
    this.#data.set(key, { value, expireAt: null });
  }

  #setPx(key: string, value: string, px: string): void {
    const ms = parseRedisInteger(px);
    if (ms === null) throw new SimReplyError('ERR value is not an integer or out of range');
    if (ms <= 0) throw new SimReplyError("ERR invalid expire time in 'set' command");
    this.#data.set(key, { value, expireAt: this.#nowMs() + ms });
  }

  #incr(key: string): number {
    const current = parseRedisInteger(this.#get(key) ?? '0');
    if (current === null) throw new SimReplyError('ERR value is not an integer or out of range');
    const next = current + 1;
    const e = this.#data.get(key);
    this.#data.set(key, { value: String(next), expireAt: e?.expireAt ?? null });
    return next;
  }

  #pexpire(key: string, ms: string): void {
    const n = parseRedisInteger(ms);
    if (n === null) throw new SimReplyError('ERR value is not an integer or out of range');
    if (this.#get(key) === null) return;
    if (n <= 0) {
      this.#data.delete(key);
      return;
    }
    this.#data.get(key)!.expireAt = this.#nowMs() + n;
  }
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
    const n = req.keys.length;
    const keys = req.fenceKeys ? [...req.keys, ...req.fenceKeys] : req.keys;
    const reply = (await this.#run('acquire', keys, [
      req.value,
      req.prefix,
      String(req.ttl),
      String(n),
      req.fenceKeys ? '1' : '0',
    ])) as number[];
    if (reply[0] === 1) return { ok: true, fences: reply.slice(1).map(Number) };
    return { ok: false, holderTtl: Number(reply[1] ?? 0) };
  }

  async extend(keys: readonly string[], value: string, ttl: number, _signal: AbortSignal) {
    return (await this.#run('extend', keys, [value, String(ttl)])) === 1;
  }

  async release(
    keys: readonly string[],
    value: string,
    channels: readonly string[],
    _signal: AbortSignal,
  ) {
    return Number(await this.#run('release', keys, [value, ...channels]));
  }

  async fenceSync(
    keys: readonly string[],
    fenceKeys: readonly string[],
    value: string,
    tokens: readonly number[],
    _signal: AbortSignal,
  ) {
    const args = [value, ...tokens.map((t) => String(t))];
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

/** Lua's tonumber on a string: null (nil) when it is not a number. */
function luaToNumber(s: string | undefined): number | null {
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
