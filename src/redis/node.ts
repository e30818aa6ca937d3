/**
 * One Redis master. A LockNode performs the lock operations on one node; the
 * coordinator (quorum.ts) fans them out and counts. RedisNode runs them as Lua
 * scripts over ioredis; the simulation provides its own LockNode.
 */
import type { Cluster, Redis } from 'ioredis';
import { raceSignal } from '../abort.js';
import { recordRtt } from '../latency.js';
import { type Script, scripts } from './scripts/index.js';

/** What an acquire call asks of one node (see scripts/acquire.lua). */
export interface AcquireRequest {
  /** Lock keys, fence counter keys, waiter queue keys and lease keys: 4 per resource, in that order. */
  readonly keys: readonly string[];
  /** This round's value. */
  readonly value: string;
  /** Prefix shared by every round of this acquisition: its own leftovers count as free. */
  readonly prefix: string;
  /** Time to live in ms. */
  readonly ttl: number;
  /** True when fencing is on. */
  readonly fencing: boolean;
  /** The waiter's member id, or '' for a caller that does not wait (it never queues). */
  readonly member: string;
  /** The waiter's ticket proposal (0 before it has one). */
  readonly ticket: number;
  /** Lease of a queue entry, ms. */
  readonly lease: number;
  /** How long a turn handed to a waiter stays reserved, ms. */
  readonly grace: number;
  /** Prefix of the waiters' notice channels. */
  readonly channel: string;
  /** Fence seed proposal, µs since the epoch. */
  readonly seed: number;
  /** Fence counter retention, ms. */
  readonly retention: number;
}

/** What a release call asks of one node (see scripts/release.lua). */
export interface ReleaseRequest {
  /** Lock, fence, queue and lease keys: 4 per resource, in that order (as for acquire). */
  readonly keys: readonly string[];
  /** The holder's value, or a waiter's turn mark or handed-over value to give back. */
  readonly value: string;
  /** A waiter leaving the queues, or ''. */
  readonly leaving: string;
  /** How long a lock or turn handed on stays reserved, ms. */
  readonly grace: number;
  /** Prefix of the waiters' notice channels. */
  readonly channel: string;
  /** '' to hand the lock on; or a value to put back instead (a turn kept). */
  readonly restore: string;
  /** Fence seed proposal for a missing counter, µs since the epoch. */
  readonly seed: number;
  /** Fence counter retention, ms. */
  readonly retention: number;
}

/** A node's answer to an acquire call. */
export type AcquireReply =
  | { readonly ok: true; readonly fences: readonly number[] }
  | {
      readonly ok: false;
      /**
       * Set when the key holds the lock a release handed to this waiter
       * (`<prefix>.g`): its remaining ms and fence counter.
       */
      readonly granted?: { readonly pttl: number; readonly fence: number };
      /** Longest remaining ttl of another holder's key, ms; -1 when none. */
      readonly holderTtl: number;
      /** The waiter's ticket; 0 when not queued. */
      readonly ticket: number;
      /** The waiter's place in the queue, 0 = first; -1 when not queued. */
      readonly rank: number;
      /** Longest remaining ms of another waiter's turn; 0 when none. */
      readonly turnTtl: number;
      /** The first resource's fence counter, for a waiter that can be handed the lock; else 0. */
      readonly fence: number;
    };

/** A node's view of one resource. */
export interface InspectReply {
  /** The value of the holder, or null when free. */
  readonly value: string | null;
  /** Remaining ttl in ms, or -2 when free. */
  readonly pttl: number;
  /** The fence counter, or null when it was never set. */
  readonly fence: number | null;
}

/** One Redis master, as the coordinator sees it. Every call may be abandoned through `signal`. */
export interface LockNode {
  /** A label for messages and outcomes, such as `127.0.0.1:6379`. */
  readonly id: string;
  acquire(req: AcquireRequest, signal: AbortSignal): Promise<AcquireReply>;
  /** True when every key still held `value` and now lives at least `ttl` ms. */
  extend(
    keys: readonly string[],
    value: string,
    ttl: number,
    signal: AbortSignal,
  ): Promise<boolean>;
  /** Hands on (or deletes) the keys that still hold `value`; returns how many did. */
  release(req: ReleaseRequest, signal: AbortSignal): Promise<number>;
  /**
   * Raises fence counters to `tokens` (kept for `retention` ms); true when
   * every key still holds `value`.
   */
  fenceSync(
    keys: readonly string[],
    fenceKeys: readonly string[],
    value: string,
    tokens: readonly number[],
    retention: number,
    signal: AbortSignal,
  ): Promise<boolean>;
  inspect(key: string, fenceKey: string, signal: AbortSignal): Promise<InspectReply>;
  /**
   * Listens for release notices on `channel`; resolves once the subscription is
   * active, with a function that stops listening. Optional: nodes without it are polled.
   */
  subscribe?(
    channel: string,
    listener: (value?: string) => void,
    signal: AbortSignal,
  ): Promise<() => void>;
  /**
   * Resolves once the first connection attempt has ended (at most after the
   * connect wait): true when connected. Optional: nodes without it are always ready.
   */
  connected?(): Promise<boolean>;
  /**
   * Runs any script of src/scripts with `keys` and `args`. Optional: nodes
   * without it do not serve semaphores and read-write locks.
   */
  run?(
    script: Script,
    keys: readonly string[],
    args: readonly string[],
    signal: AbortSignal,
  ): Promise<unknown>;
  /** Closes the connections this node opened (including its subscriber). */
  close(): Promise<void>;
}

/** The ARGV `build` makes for `req`, built once per request, whatever the number of nodes. */
function argsOf<R extends object>(req: R, build: (req: R) => readonly string[]): readonly string[] {
  let args = encoded.get(req);
  if (!args) {
    args = build(req);
    encoded.set(req, args);
  }
  return args;
}

/** ARGV of the acquire script for `req` (see scripts/acquire.lua). */
export function acquireArgs(req: AcquireRequest): readonly string[] {
  return argsOf(req, (r) => [
    r.value,
    r.prefix,
    String(r.ttl),
    String(r.keys.length / 4),
    r.fencing ? '1' : '0',
    r.member,
    String(r.ticket),
    String(r.lease),
    String(r.grace),
    r.channel,
    String(r.seed),
    String(r.retention),
  ]);
}

/** ARGV of the release script for `req` (see scripts/release.lua). */
export function releaseArgs(req: ReleaseRequest): readonly string[] {
  return argsOf(req, (r) => [
    r.value,
    r.leaving,
    String(r.grace),
    r.channel,
    r.restore,
    String(r.seed),
    String(r.retention),
  ]);
}

const encoded = new WeakMap<object, readonly string[]>();

/** The acquire script's reply as an AcquireReply. */
export function acquireReply(raw: unknown): AcquireReply {
  const reply = raw as number[];
  if (reply[0] === 1) {
    const fences: number[] = [];
    for (let i = 1; i < reply.length; i++) fences.push(Number(reply[i]));
    return { ok: true, fences };
  }
  if (reply[0] === 2) {
    return {
      ok: false,
      granted: { pttl: Number(reply[1]), fence: Number(reply[2]) },
      holderTtl: -1,
      ticket: 0,
      rank: -1,
      turnTtl: 0,
      fence: Number(reply[2]),
    };
  }
  return {
    ok: false,
    holderTtl: Number(reply[1] ?? -1),
    ticket: Number(reply[2] ?? 0),
    rank: Number(reply[3] ?? -1),
    turnTtl: Number(reply[4] ?? 0),
    fence: Number(reply[5] ?? 0),
  };
}

/**
 * Calls in flight to one node from which its writes are coalesced (many locks
 * at once); below it a call is written at once, as a lone lock's calls are.
 */
const COALESCE_AT = 4;

/** Commands a node may have in flight before further calls fail at once instead of queueing. */
export const MAX_IN_FLIGHT = 2048;

/** Raised when a node cannot take a call right now; the call was not sent. */
export class NodeUnavailableError extends Error {
  override name = 'NodeUnavailableError';
}

type Client = Redis | Cluster;

/** A LockNode over an ioredis connection (or Cluster, which counts as one node). */
export class RedisNode implements LockNode {
  readonly id: string;
  /** The ioredis client; also used by the waiting logic to open a subscriber. */
  readonly client: Client;
  readonly #owned: boolean;
  #inFlight = 0;
  #lastError: Error | undefined;
  /** True while writes to the socket are held (see #coalesce). */
  #corked = false;
  #everReady: boolean;
  #connectWaitMs: number;
  #subscriber: Redis | undefined;
  /** The wait for the first connection, shared by every call made meanwhile. */
  #connecting: Promise<void> | undefined;
  readonly #listeners = new Map<string, Set<(value?: string) => void>>();

  /**
   * @param owned whether this node opened `client` and so closes it.
   * @param connectWaitMs how long a call may wait for the first connection.
   */
  constructor(id: string, client: Client, owned: boolean, connectWaitMs: number) {
    this.id = id;
    this.client = client;
    this.#owned = owned;
    this.#connectWaitMs = connectWaitMs;
    this.#everReady = client.status === 'ready';
    // Why the connection failed last (refused, TLS, authentication): the cause of calls that cannot go out.
    client.on('error', (err: Error) => {
      this.#lastError = err;
    });
    if (!this.#everReady) client.once('ready', () => (this.#everReady = true));
    // Load the scripts on every (re)connection, so the first round is one EVALSHA, not two calls.
    if (owned) {
      client.on('ready', () => {
        for (const script of Object.values(scripts)) {
          (client as Redis).script('LOAD', script.lua).catch(() => {});
        }
      });
    }
  }

  async acquire(req: AcquireRequest, signal: AbortSignal): Promise<AcquireReply> {
    return acquireReply(await this.#run(scripts.acquire, req.keys, acquireArgs(req), signal));
  }

  async extend(keys: readonly string[], value: string, ttl: number, signal: AbortSignal) {
    return (await this.#run(scripts.extend, keys, [value, String(ttl)], signal)) === 1;
  }

  async release(req: ReleaseRequest, signal: AbortSignal) {
    return Number(await this.#run(scripts.release, req.keys, releaseArgs(req), signal));
  }

  async fenceSync(
    keys: readonly string[],
    fenceKeys: readonly string[],
    value: string,
    tokens: readonly number[],
    retention: number,
    signal: AbortSignal,
  ) {
    const args = [value, ...tokens.map((t) => String(t)), String(retention)];
    return (await this.#run(scripts.fenceSync, [...keys, ...fenceKeys], args, signal)) === 1;
  }

  async inspect(key: string, fenceKey: string, signal: AbortSignal): Promise<InspectReply> {
    const [value, pttl, fence] = (await this.#run(
      scripts.inspect,
      [key, fenceKey],
      [],
      signal,
    )) as [string | null, number, string | null];
    return {
      value: value ?? null,
      pttl: Number(pttl),
      fence: fence == null ? null : Number(fence),
    };
  }

  /**
   * Runs `script` on this node as every call here (EVALSHA, on a ready
   * connection). For the scripts of other primitives (semaphores, read-write locks).
   */
  run(
    script: Script,
    keys: readonly string[],
    args: readonly string[],
    signal: AbortSignal,
  ): Promise<unknown> {
    return this.#run(script, keys, args, signal);
  }

  connected(): Promise<boolean> {
    if (this.#everReady || !['wait', 'connecting', 'connect'].includes(this.client.status)) {
      return Promise.resolve(this.client.status === 'ready');
    }
    return this.#ready(AbortSignal.timeout(this.#connectWaitMs)).then(
      () => true,
      () => false,
    );
  }

  async subscribe(
    channel: string,
    listener: (value?: string) => void,
    signal: AbortSignal,
  ): Promise<() => void> {
    let listeners = this.#listeners.get(channel);
    if (!listeners) {
      listeners = new Set();
      this.#listeners.set(channel, listeners);
    }
    listeners.add(listener);
    const unsubscribe = () => {
      const set = this.#listeners.get(channel);
      if (!set?.delete(listener) || set.size > 0) return;
      this.#listeners.delete(channel);
      if (this.#subscriber?.status === 'ready')
        this.#subscriber.unsubscribe(channel).catch(() => {});
    };
    if (listeners.size === 1) {
      try {
        const subscriber = this.#subscriberClient();
        // Queue a SUBSCRIBE only behind the first connection, never behind a reconnect that may not come.
        if (!['ready', 'wait', 'connecting', 'connect'].includes(subscriber.status)) {
          throw new NodeUnavailableError(
            `${this.id} subscriber is not connected (${subscriber.status})`,
          );
        }
        // `signal` is the instance's closing signal: follow it through a derived one.
        await raceSignal(subscriber.subscribe(channel), AbortSignal.any([signal]));
      } catch (err) {
        unsubscribe();
        throw err;
      }
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    this.#subscriber?.disconnect();
    this.#subscriber = undefined;
    this.#listeners.clear();
    if (this.#owned) this.client.disconnect();
  }

  /** The subscriber connection, opened on first use; it re-subscribes its channels after reconnecting. */
  #subscriberClient(): Redis {
    if (this.#subscriber) return this.#subscriber;
    if (!('duplicate' in this.client) || isCluster(this.client)) {
      throw new NodeUnavailableError(`${this.id} does not support release notices`);
    }
    const sub = (this.client as Redis).duplicate({
      enableOfflineQueue: true,
      enableAutoPipelining: false,
      lazyConnect: false,
    });
    sub.on('error', () => {});
    sub.on('message', (channel: string, value: string) => {
      for (const listener of this.#listeners.get(channel) ?? []) listener(value);
    });
    this.#subscriber = sub;
    return sub;
  }

  /** EVALSHA, falling back to EVAL (which caches the script) when the node does not know it yet. */
  #run(
    script: Script,
    keys: readonly string[],
    args: readonly string[],
    signal: AbortSignal,
  ): Promise<unknown> {
    if (this.client.status === 'ready') return this.#send(script, keys, args);
    return this.#ready(signal).then(() => this.#send(script, keys, args));
  }

  async #send(script: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    if (this.#inFlight >= MAX_IN_FLIGHT) {
      throw new NodeUnavailableError(`${this.id} has ${this.#inFlight} calls in flight`);
    }
    if (this.#inFlight >= COALESCE_AT) this.#coalesce();
    this.#inFlight++;
    const sentAt = performance.now();
    try {
      const reply = await this.client.evalsha(script.sha, keys.length, ...keys, ...args);
      // Late replies count too: they teach the default nodeTimeout how far this node is.
      recordRtt(this, performance.now() - sentAt);
      return reply;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await this.client.eval(script.lua, keys.length, ...keys, ...args);
    } finally {
      this.#inFlight--;
    }
  }

  /**
   * With calls already in flight (many locks at once), holds the writes to the
   * socket until this turn of the event loop is done (setImmediate) and sends
   * them together: one write system call instead of one per call. A call to an
   * idle node is written at once.
   */
  #coalesce(): void {
    if (this.#corked) return;
    const stream = (this.client as { stream?: { cork?(): void; uncork?(): void } }).stream;
    if (typeof stream?.cork !== 'function' || typeof stream.uncork !== 'function') return;
    this.#corked = true;
    stream.cork();
    setImmediate(() => {
      this.#corked = false;
      stream.uncork!();
    });
  }

  /**
   * Calls go out only on a ready connection: commands must not queue behind a
   * down node. Before the very first connection is up, a call waits for it
   * (bounded by `signal` and connectWaitMs).
   */
  #ready(signal: AbortSignal): Promise<void> {
    const status = this.client.status;
    if (status === 'ready') return Promise.resolve();
    if (this.#everReady || !['wait', 'connecting', 'connect'].includes(status)) {
      return Promise.reject(
        new NodeUnavailableError(`${this.id} is not connected (${status})`, {
          cause: this.#lastError,
        }),
      );
    }
    if (status === 'wait') (this.client as Redis).connect?.().catch(() => {});
    this.#connecting ??= new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        this.client.off('end', onEnd);
        this.client.off('close', onEnd);
        this.#connecting = undefined;
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onEnd = () =>
        done(new NodeUnavailableError(`${this.id} could not connect`, { cause: this.#lastError }));
      const timer = setTimeout(
        () =>
          done(new NodeUnavailableError(`${this.id} did not connect in ${this.#connectWaitMs} ms`)),
        this.#connectWaitMs,
      );
      timer.unref();
      this.client.on('ready', onReady);
      this.client.on('end', onEnd);
      // The first connection attempt failed (refused, reset): do not wait for retries.
      this.client.on('close', onEnd);
    });
    return raceSignal(this.#connecting, signal);
  }
}

function isCluster(client: Client): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}
