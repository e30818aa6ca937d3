/**
 * A simulated redis-server for semaphores and read-write locks: the keyspace
 * of src/redis/scripts/permits.lua (a hash, sorted sets and a counter per name,
 * each key with an expiry on the server's wall clock) and that script
 * re-implemented step by step, so that the simulation decides as the Lua
 * does. A PermitLink is one client's connection: every request and reply
 * travels with its own delay, as an event of the server (held while the
 * server is paused: a late answer) and of the client. Pub/sub notices travel
 * the same way.
 */
import type { LockNode } from '../../src/redis/node.js';
import type { Script } from '../../src/redis/scripts/index.js';
import type { Scheduler } from './clock.js';
import { SimClock } from './clock.js';
import { laterRound } from './node.js';

type Value =
  | { kind: 'hash'; map: Map<string, string> }
  | { kind: 'zset'; map: Map<string, number> }
  | { kind: 'string'; value: string };

interface Key {
  value: Value;
  /** Server wall-clock ms, or null for none. */
  expireAt: number | null;
}

/** One simulated server of permits. */
export class PermitServer {
  readonly clock: SimClock;
  readonly #data = new Map<string, Key>();
  readonly #subs = new Map<string, Set<(payload: string, deliver: number) => void>>();
  #now = 0;

  constructor(
    readonly sched: Scheduler,
    readonly id: string,
    wallOffset: number,
    rate: number,
  ) {
    this.clock = new SimClock(sched, id, { wallOffset, rate });
  }

  /**
   * A client's connection, with one-way delays drawn by `delay`. In order, as
   * one TCP connection delivers; `inOrder: false` lets every request and reply
   * take its own time, as requests resent after a cluster redirect can.
   */
  connect(client: string, delay: () => number, inOrder = true): LockNode {
    return new PermitLink(this, client, delay, inOrder);
  }

  subscribe(channel: string, listener: (payload: string, deliver: number) => void): () => void {
    let set = this.#subs.get(channel);
    if (!set) {
      set = new Set();
      this.#subs.set(channel, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Loses every key (a restart without data). */
  wipe(): void {
    this.#data.clear();
  }

  /** False while the process is down: requests get a connection error, nothing runs. */
  up = true;

  /** The process dies: every key is gone, connections fail until `restart()`. */
  crash(): void {
    this.up = false;
    this.wipe();
  }

  /** The process is back, empty. */
  restart(): void {
    this.up = true;
  }

  /** Runs permits.lua atomically, with the server's time frozen as Redis does. */
  run(keys: readonly string[], argv: readonly string[]): unknown {
    this.#now = Math.floor(this.clock.wallNow());
    const reply = permits(this, keys, argv, this.#now);
    if (process.env.SIM_TRACE) {
      // One line per script run: its arguments, reply, the holders and the queue after it.
      const expiry = this.zset(keys[1]!);
      const holders = [...(this.hash(keys[0]!) ?? [])].map(([f, v]) => [f, v, expiry?.get(f)]);
      console.log(
        `${this.sched.now.toFixed(3)} ${this.id} ${JSON.stringify(argv)} -> ${JSON.stringify(reply)} hold=${JSON.stringify(holders)} queue=${JSON.stringify(this.sorted(keys[2]!))}`,
      );
    }
    return reply;
  }

  #get(key: string): Key | undefined {
    const k = this.#data.get(key);
    if (k && k.expireAt !== null && k.expireAt <= this.#now) {
      this.#data.delete(key);
      return undefined;
    }
    return k;
  }

  hash(key: string): Map<string, string> | undefined {
    const k = this.#get(key);
    return k?.value.kind === 'hash' ? k.value.map : undefined;
  }

  zset(key: string): Map<string, number> | undefined {
    const k = this.#get(key);
    return k?.value.kind === 'zset' ? k.value.map : undefined;
  }

  string(key: string): string | undefined {
    const k = this.#get(key);
    return k?.value.kind === 'string' ? k.value.value : undefined;
  }

  hset(key: string, field: string, value: string): void {
    this.#create(key, 'hash', this.hash(key)).set(field, value);
  }

  zadd(key: string, score: number, member: string): void {
    this.#create(key, 'zset', this.zset(key)).set(member, score);
  }

  /** `existing`, or a new empty hash or sorted set stored at `key`. */
  #create<V>(
    key: string,
    kind: 'hash' | 'zset',
    existing: Map<string, V> | undefined,
  ): Map<string, V> {
    if (existing) return existing;
    const map = new Map<string, V>();
    this.#data.set(key, { value: { kind, map } as unknown as Value, expireAt: null });
    return map;
  }

  /** HDEL or ZREM: Redis deletes a hash or sorted set (and its expiry) once it is empty. */
  remove(key: string, entries: readonly string[]): void {
    const k = this.#get(key);
    if (!k || k.value.kind === 'string') return;
    for (const e of entries) k.value.map.delete(e);
    if (k.value.map.size === 0) this.#data.delete(key);
  }

  /** Members in Redis order: by score, then by member bytes. */
  sorted(key: string): Array<[string, number]> {
    const map = this.zset(key);
    if (!map) return [];
    return [...map].sort(
      ([a, sa], [b, sb]) => sa - sb || Buffer.compare(Buffer.from(a), Buffer.from(b)),
    );
  }

  setString(key: string, value: string, px: number): void {
    this.#data.set(key, { value: { kind: 'string', value }, expireAt: this.#now + px });
  }

  /** PTTL: -2 when missing, -1 without expiry. */
  pttl(key: string): number {
    const k = this.#get(key);
    if (!k) return -2;
    return k.expireAt === null ? -1 : k.expireAt - this.#now;
  }

  pexpire(key: string, ms: number): void {
    const k = this.#get(key);
    if (k) k.expireAt = this.#now + ms;
  }

  publish(channel: string, payload: string): void {
    for (const listener of this.#subs.get(channel) ?? []) listener(payload, 0);
  }
}

/** permits.lua, step by step (see that file for the contract). */
function permits(s: PermitServer, keys: readonly string[], argv: readonly string[], now: number) {
  const [hold, exp, q, e, fk] = keys as [string, string, string, string, string];
  const [op, kind, limitText, value, field, member] = argv as string[] as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const limit = Number(limitText);
  const grace = Number(argv[7]);
  const nowUs = now * 1000;
  const keep = (key: string, ms: number) => {
    if (s.pttl(key) < ms) s.pexpire(key, ms);
  };
  // Expired fields and leases go first, as the script's purge does.
  const purge = (scores: string, also: string, count: number) => {
    const dead = s
      .sorted(scores)
      .filter(([, score]) => score <= now)
      .slice(0, count)
      .map(([m]) => m);
    s.remove(also, dead);
    s.remove(scores, dead);
  };
  purge(exp, hold, 256);
  purge(e, q, 64);
  const holdMap = () => s.hash(hold) ?? new Map<string, string>();
  const room = (k: string, m: string, hint: string): string | false => {
    if (k === 'w') return holdMap().size === 0 ? 'w' : false;
    if (k === 'r') return holdMap().has('w') ? false : `r${m}`;
    if (holdMap().size < limit) {
      if (hint !== '' && Number(hint) < limit && !holdMap().has(hint)) return hint;
      for (let i = 0; i < limit; i++) if (!holdMap().has(String(i))) return String(i);
    }
    return false;
  };
  const serve = (me: string, hint: string): string | undefined => {
    for (;;) {
      const head = s.sorted(q)[0]?.[0];
      if (head === undefined || head === me) return head;
      const f = room(head.slice(-1), head, hint);
      hint = '';
      if (!f) return head;
      s.hset(hold, f, `~turn~${head}`);
      s.zadd(exp, now + grace, f);
      keep(hold, grace);
      keep(exp, grace);
      s.remove(q, [head]);
      s.remove(e, [head]);
      s.publish(argv[8]! + head.split('.')[0]!, `${head} ${hold}`);
    }
  };
  const fence = (step: number, to: number, proposal: number, retention: number): number => {
    const cur = s.string(fk);
    let f: number;
    if (cur !== undefined) f = Number(cur) + step;
    else f = proposal > nowUs && proposal <= nowUs + 1_000_000 ? proposal : nowUs;
    if (f < to) f = to;
    s.setString(fk, f.toFixed(0), retention);
    return f;
  };

  if (op === 'extend') {
    if (holdMap().get(field) !== value) return 0;
    const ttl = Number(argv[6]);
    if (s.zset(exp)!.get(field)! < now + ttl) s.zadd(exp, now + ttl, field);
    keep(hold, ttl);
    keep(exp, ttl);
    return 1;
  }
  if (op === 'sync') {
    fence(0, Number(argv[6]), 0, Number(argv[9]));
    return holdMap().get(field) === value ? 1 : 0;
  }
  if (op === 'release') {
    const leaving = argv[9]!;
    const restore = argv[10]!;
    if (leaving !== '') {
      s.remove(q, [leaving]);
      s.remove(e, [leaving]);
    }
    const fields: string[] = [];
    if (field !== '') {
      if (holdMap().get(field) === value) fields.push(field);
    } else {
      for (const [f, v] of holdMap()) if (v === value) fields.push(f);
    }
    const requeue = Number(argv[11] ?? '0');
    if (requeue > 0 && restore === '' && fields.length > 0) {
      const lease = Number(argv[12]);
      s.zadd(q, requeue, member);
      s.zadd(e, now + lease, member);
      keep(q, lease);
      keep(e, lease);
    }
    for (const f of fields) {
      if (restore !== '') {
        s.hset(hold, f, `~turn~${restore}`);
        s.zadd(exp, now + grace, f);
      } else {
        s.remove(hold, [f]);
        s.remove(exp, [f]);
      }
    }
    serve('', kind === 's' ? (fields[0] ?? '') : '');
    return fields.length;
  }

  const prefix = argv[9]!;
  const waits = argv[10] === '1';
  const mark = `~turn~${member}`;
  const ours = (v: string | undefined) => v !== undefined && (v === mark || v.startsWith(prefix));
  // A leftover of a later round: this request was overtaken and changes nothing.
  const later = (v: string) => laterRound(prefix, value, v);
  let granted: string | false = false;
  if (kind === 's') {
    // HGETALL order is insertion order in a small Redis hash (listpack); the last match wins.
    for (const [f, v] of holdMap()) {
      if (!ours(v)) continue;
      if (later(v)) return [0, -1, 0, -1];
      granted = f;
    }
  } else {
    const f = kind === 'w' ? 'w' : `r${member}`;
    const v = holdMap().get(f);
    if (ours(v)) {
      if (later(v!)) return [0, -1, 0, -1];
      granted = f;
    }
  }
  const hint = argv[15]!;
  let moved = '';
  if (granted && kind === 's' && hint !== granted && hint !== '' && Number(hint) < limit) {
    const v = holdMap().get(hint);
    if (v === undefined || v.startsWith('~turn~')) {
      if (v !== undefined) {
        s.hset(hold, granted, v);
        s.zadd(exp, s.zset(exp)!.get(hint)!, granted);
      } else {
        s.remove(hold, [granted]);
        s.remove(exp, [granted]);
        moved = granted;
      }
      granted = hint;
    }
  }
  if (!granted) {
    const head = serve(member, '');
    if (head === undefined || (head === member && waits)) granted = room(kind, member, hint);
  }
  if (!granted) {
    let ticket = 0;
    let rank = -1;
    if (waits) {
      ticket = Number(argv[11]);
      const mine = s.zset(q)?.get(member);
      if (mine !== undefined) {
        if (mine > ticket) ticket = mine;
      } else {
        const last = s.sorted(q).at(-1)?.[1];
        if (last !== undefined && last + 1 > ticket) ticket = last + 1;
      }
      if (ticket < 1) ticket = 1;
      const lease = Number(argv[12]);
      s.zadd(q, ticket, member);
      s.zadd(e, now + lease, member);
      s.pexpire(q, lease);
      s.pexpire(e, lease);
      rank = s.sorted(q).findIndex(([m]) => m === member);
    }
    const sortedExp = s.sorted(exp);
    let nearest: number | undefined;
    if (kind === 'r') nearest = s.zset(exp)?.get('w');
    else if (kind === 'w') nearest = sortedExp.at(-1)?.[1];
    else if (rank === 0) nearest = sortedExp[0]?.[1];
    else
      nearest = sortedExp.find(([f]) => !(holdMap().get(f) ?? '~turn~').startsWith('~turn~'))?.[1];
    return [0, nearest === undefined ? -1 : nearest - now, ticket, rank];
  }
  const ttl = Number(argv[6]);
  s.hset(hold, granted, value);
  s.zadd(exp, now + ttl, granted);
  keep(hold, ttl);
  keep(exp, ttl);
  s.remove(q, [member]);
  s.remove(e, [member]);
  if (moved !== '') serve('', moved);
  const f = argv[13] === '1' ? fence(1, 0, Number(argv[14]), Number(argv[16])) : 0;
  return [1, granted, f];
}

/** One client's connection to a PermitServer: requests and replies with delays. */
class PermitLink implements LockNode {
  readonly id: string;
  #lastRequest = 0;
  #lastReply = 0;

  constructor(
    readonly server: PermitServer,
    readonly client: string,
    readonly delay: () => number,
    readonly inOrder: boolean,
  ) {
    this.id = server.id;
  }

  run(script: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    if (script.name !== 'permits') return Promise.reject(new Error(`no ${script.name} here`));
    const { sched } = this.server;
    return new Promise((resolve, reject) => {
      // The request runs as the server's event (held while it is paused), the
      // reply as the client's. In order, a request never overtakes an earlier
      // one (an undo travels behind the acquire it undoes), nor a reply an
      // earlier reply.
      const floor = (last: number) => (this.inOrder ? last : 0);
      const arrival = Math.max(sched.now + this.delay(), floor(this.#lastRequest));
      this.#lastRequest = arrival;
      sched.at(arrival, this.server.id, () => {
        if (!this.server.up) {
          // A dead process: the connection is refused or reset.
          sched.after(this.delay(), this.client, () =>
            reject(new Error(`${this.server.id}: connection refused`)),
          );
          return;
        }
        const reply = this.server.run(keys, args);
        const back = Math.max(sched.now + this.delay(), floor(this.#lastReply));
        this.#lastReply = back;
        sched.at(back, this.client, () => resolve(reply));
      });
    });
  }

  async subscribe(channel: string, listener: (value?: string) => void): Promise<() => void> {
    const { sched } = this.server;
    return this.server.subscribe(channel, (payload) => {
      sched.after(this.delay(), this.client, () => listener(payload));
    });
  }

  acquire(): never {
    throw new Error('locks are not simulated here');
  }
  extend(): never {
    throw new Error('locks are not simulated here');
  }
  release(): never {
    throw new Error('locks are not simulated here');
  }
  fenceSync(): never {
    throw new Error('locks are not simulated here');
  }
  inspect(): never {
    throw new Error('locks are not simulated here');
  }
  async close(): Promise<void> {}
}
