/**
 * Redlock: one lock held on a majority of N independent Redis masters.
 * acquire, extend, release and inspect are each one script sent to every
 * node through the coordinator (quorum.ts) with a rule for success.
 */
import { randomBytes } from 'node:crypto';
import { raceSignal } from '../abort.js';
import { type Clock, systemClock } from '../clock.js';
import { publish } from '../diagnostics.js';
import {
  AcquireTimeoutError,
  ClosedError,
  InvalidArgumentError,
  LockTakenError,
  QuorumError,
} from '../errors.js';
import type { Leader, LeaderOptions, LeaderRoutine } from '../leader.js';
import { type ExtendResult, Lock, type LockContext } from '../lock.js';
import {
  type AcquireOptions,
  type AcquireSettings,
  defaultNodeTimeout,
  type RedlockOptions,
  resolveAcquire,
  resolveResources,
  resolveSettings,
  type Settings,
  show,
} from '../options.js';
import { type LockProvider, type ProviderRoutine, runUsing, startLeader } from '../provider.js';
import { backoffDelay, LocalQueue, Wakeup } from '../waiting.js';
import { checkNodeSpecs, type NodeSpec, openNodes } from './connect.js';
import { expiredReason, extendOutcome } from './extend-round.js';
import { chooseTokens } from './fencing.js';
import { fenceKey, leaseKey, lockKey, queueKey, turnChannelPrefix, turnMark } from './keys.js';
import type { AcquireReply, AcquireRequest, LockNode, ReleaseRequest } from './node.js';
import type { PermitHost } from './permits.js';
import {
  fanOut,
  holderTtlOnQuorum,
  isInfrastructureFailure,
  type NodeOutcome,
  type Round,
} from './quorum.js';
import { ReadWriteLock } from './rwlock.js';
import { Semaphore, type SemaphoreOptions } from './semaphore.js';

/** One node's view of a resource, from `inspect`. */
export interface NodeState {
  readonly node: string;
  /** Holder's value on this node, or null when free. */
  readonly value: string | null;
  /** Remaining ttl on this node in ms, or null when free or unreachable. */
  readonly pttl: number | null;
  /** Fence counter on this node, or null when never set or unreachable. */
  readonly fence: number | null;
  /** The waiter whose turn the key is reserved for, when it is. */
  readonly turn?: string;
  /** Why the node could not be read, when it could not. */
  readonly error?: unknown;
}

/** The state of a resource across the nodes, from `inspect`. */
export interface ResourceState {
  readonly resource: string;
  /** The value held on at least a quorum of nodes, or null. */
  readonly holder: string | null;
  readonly quorum: number;
  readonly nodes: readonly NodeState[];
}

/** The critical section run by `using`: gets the lost-lock signal and the lock. */
export type UsingRoutine<T> = ProviderRoutine<T>;

type Attempt =
  | { kind: 'acquired'; lock: Lock }
  | {
      kind: 'taken';
      holderTtl: number | undefined;
      outcomes: readonly NodeOutcome[];
      /** The highest ticket a node gave this waiter (0 when not queued). */
      ticket: number;
      /** True when the nodes that queued this waiter gave it different tickets. */
      ticketsDiffer: boolean;
      /** The best place in the queue a node gave this waiter (0 = first); -1 when not queued. */
      rank: number;
      /** Longest remaining ms of another waiter's turn, as seen by a node where this waiter is first. */
      turnTtl: number;
    }
  | { kind: 'quorum'; outcomes: readonly NodeOutcome[] }
  /** Not final: validity used up, or fence phase 2 could not confirm on a quorum. */
  | { kind: 'retry'; reason: string; outcomes: readonly NodeOutcome[] };

/** Nodes and clock handed to the constructor by `fromNodes`, keyed by a placeholder array. */
const prebuiltInit = new WeakMap<object, { nodes: readonly LockNode[]; clock: Clock }>();

/** Consecutive rounds failed for lack of reachable nodes after which acquire gives up. */
const MAX_INFRA_ROUNDS = 3;

const TURN_MARK = turnMark('');

/** Reason of the internal abort when `wait` runs out while lining up. */
const WAIT_OVER = Symbol('wait over');

/** Milliseconds a call may wait for a node's first connection. */
const CONNECT_WAIT_MS = 2000;

/** How often a queued waiter refreshes its place (and claims a turn it may have missed), ms. */
export const QUEUE_REFRESH_MS = 1000;

/** Lease of a queue entry, ms: an entry not refreshed for this long is dropped. */
export const QUEUE_LEASE_MS = 3 * QUEUE_REFRESH_MS;

/** A handed-over lock with less validity left than this is claimed by a round instead, ms. */
const MIN_HANDOVER_MS = 10;

/** Bounds of the turn grace, ms: twice the node timeout, within these. */
export const MIN_TURN_GRACE_MS = 250;
export const MAX_TURN_GRACE_MS = 500;

/** Retention of a fence counter after its last use, ms (docs/safety.md: why this is safe). */
export const FENCE_RETENTION_MS = 3_600_000;

/** How far ahead of the client's wall clock it proposes a fresh fence counter's seed, µs. */
const FENCE_SEED_MARGIN_US = 250_000;

const ACQUIRED = { yes: true, status: 'acquired' } as const;
const TAKEN = { yes: false, status: 'taken' } as const;
const RELEASED = { yes: true, status: 'released' } as const;
/** A node that holds the lock a release handed to this waiter: not a yes for this round's value. */
const GRANTED = { yes: false, status: 'pending' } as const;

/** What every round of one acquisition shares. */
interface Plan {
  readonly a: AcquireSettings;
  /** Lock, fence, queue and lease keys, 4 per resource. */
  readonly keys: readonly string[];
  /** Prefix of every value of this acquisition. */
  readonly prefix: string;
  /** This waiter's member id in the queues; '' when it does not wait. */
  readonly member: string;
  /** The highest ticket the nodes gave this waiter so far. */
  ticket: number;
  /** True after a notice said a turn was handed to this waiter: undoing a failed claim keeps the turn. */
  turn: boolean;
  /** True once the nodes may hold a queue entry of this waiter. */
  queued: boolean;
  /** Per node, its latest answer, once any node refused: a refusal queued us there. */
  answers: Array<'queued' | 'acquired' | undefined> | undefined;
  /** True once this acquisition holds the lock: later refusals are left at once. */
  won: boolean;
  /** True when the lock it holds is the one releases handed it (`grant`), not a round's value. */
  wonGrant: boolean;
  /** True when turns of this instance were already announced to it when the first round went out. */
  heard: boolean;
  /**
   * True when a release may hand this waiter the lock itself (one resource,
   * fencing on): the key is set to `grant` on that node.
   */
  readonly handable: boolean;
  /** The value a node holds when it handed this waiter the lock: `<prefix>.g`. */
  readonly grant: string;
  /** Per node: the latest rounds it refused (send time, its fence counter then). */
  readonly refusals: Array<Array<{ sentAt: number; fence: number }> | undefined>;
  /** Per node: a handed-over lock it holds for us, from a notice or a reply. */
  readonly grants: Array<Grant | undefined>;
}

/**
 * A lock a node handed to a waiter, as the waiter knows it: `expiry` bounds
 * from below when the node lets the key expire (monotonic ms of this process),
 * `span` is the ttl that bound rests on, `fence` the counter the node gave.
 * From a notice, `expiry` is known only once the waiter has the reply of a
 * round the node refused before handing it over.
 */
interface Grant {
  readonly fence: number;
  readonly span: number;
  expiry: number | undefined;
}

/**
 * A Redlock client over N independent Redis masters. Create one per set of
 * nodes and share it; `close()` it when done.
 */
export class Redlock implements LockProvider {
  /** Resolved settings of this instance. */
  readonly settings: Settings;
  readonly #nodes: readonly LockNode[];
  readonly #clock: Clock;
  readonly #queue = new LocalQueue();
  readonly #locks = new Set<Lock>();
  /** This instance's id: its waiters' members start with it, and turns are announced on its channel. */
  readonly #id = randomBytes(9).toString('base64url');
  /** The member id a held lock was queued under, when it was. */
  readonly #members = new WeakMap<Lock, string>();
  /** Waiters queued on the nodes, by member. */
  readonly #waiters = new Map<string, { wake: Wakeup; plan: Plan }>();
  /** Notices that arrived before their waiter listened: member -> [node index, notice]. */
  readonly #early = new Map<string, Array<[number, string]>>();
  /** The subscription to this instance's turn channel: true once active on a quorum. */
  #turns: Promise<boolean> | undefined;
  /** True while the turn channel is known to be active on a quorum. */
  #turnsActive = false;
  /** Aborted by close(): ends subscriptions in progress. */
  readonly #closing = new AbortController();
  readonly #background = new Set<Promise<unknown>>();
  readonly #aborts = new Set<AbortController>();
  readonly #ctx: LockContext;
  #closed: Promise<void> | undefined;
  #connected: Promise<unknown> | undefined;
  /** True once the first connection wait is over: later calls skip it. */
  #allConnected = false;

  /**
   * @param nodes URLs (`redis://[user:password@]host[:port][/db]`, `rediss://…`) or ioredis
   *   Redis / Cluster instances (a Cluster counts as one node). Connections opened from
   *   URLs are closed by `close()`; instances passed in stay the caller's.
   * @param options see RedlockOptions; every field optional.
   */
  constructor(nodes: readonly NodeSpec[], options?: RedlockOptions) {
    const prebuilt = prebuiltInit.get(nodes);
    if (prebuilt) {
      this.settings = resolveSettings(options, prebuilt.nodes.length);
      this.#nodes = prebuilt.nodes;
      this.#clock = prebuilt.clock;
    } else {
      const specs = checkNodeSpecs(nodes);
      this.settings = resolveSettings(options, specs.length);
      // Validation is done: from here on we may open connections.
      this.#nodes = openNodes(specs, Math.max(CONNECT_WAIT_MS, this.settings.nodeTimeout ?? 0));
      this.#clock = systemClock;
    }
    this.#ctx = this.#makeContext();
  }

  /**
   * A Redlock over already-built nodes and a clock of the caller's.
   * @internal For the simulation and tests.
   */
  static fromNodes(nodes: readonly LockNode[], options: RedlockOptions, clock: Clock): Redlock {
    const token: NodeSpec[] = [];
    prebuiltInit.set(token, { nodes: [...nodes], clock });
    try {
      return new Redlock(token, options);
    } finally {
      prebuiltInit.delete(token);
    }
  }

  /** The node labels, in the order given. */
  get nodeIds(): readonly string[] {
    return this.#nodes.map((n) => n.id);
  }

  /** The nodes' LockNode objects. @internal */
  get lockNodes(): readonly LockNode[] {
    return this.#nodes;
  }

  /**
   * Acquires a lock on `resources` (one name or several, all-or-nothing),
   * trying until it holds it, `wait` ms pass (AcquireTimeoutError) or `signal`
   * aborts (rejects with its reason). Rejects with QuorumError when too few
   * nodes can be reached, and with InvalidArgumentError on bad input.
   */
  async acquire(resources: string | readonly string[], options?: AcquireOptions): Promise<Lock> {
    const a = resolveAcquire(resources, options, this.settings, Number.POSITIVE_INFINITY);
    const result = await this.#acquire(a);
    if (result instanceof Lock) return result;
    throw result;
  }

  /**
   * Tries once (or for `wait` ms when given) to acquire `resources`. Resolves
   * with null when another holder has the lock; rejects on infrastructure failure.
   */
  async tryAcquire(
    resources: string | readonly string[],
    options?: AcquireOptions,
  ): Promise<Lock | null> {
    const a = resolveAcquire(resources, options, this.settings, 0);
    const result = await this.#acquire(a);
    return result instanceof Lock ? result : null;
  }

  /**
   * Acquires `resources`, runs `fn(signal, lock)` while renewing the lock, and
   * always releases it. Returns what `fn` returns; if `fn` throws, that error
   * is what the caller gets, whatever release does. `signal` aborts with a
   * LockLostError if the lock is lost while `fn` runs.
   */
  async using<T>(resources: string | readonly string[], fn: UsingRoutine<T>): Promise<T>;
  async using<T>(
    resources: string | readonly string[],
    options: AcquireOptions,
    fn: UsingRoutine<T>,
  ): Promise<T>;
  async using<T>(
    resources: string | readonly string[],
    optionsOrFn: AcquireOptions | UsingRoutine<T>,
    maybeFn?: UsingRoutine<T>,
  ): Promise<T> {
    return runUsing(this, this.settings, resources, optionsOrFn, maybeFn);
  }

  /**
   * Campaigns for leadership of `resource` until `stop()`: while elected, runs
   * `fn(signal, lock)` with the lock renewed; on loss aborts `signal` and
   * campaigns again.
   */
  leader(resource: string, options: LeaderOptions, fn: LeaderRoutine): Leader;
  leader(resource: string, fn: LeaderRoutine): Leader;
  leader(
    resource: string,
    optionsOrFn: LeaderOptions | LeaderRoutine,
    maybeFn?: LeaderRoutine,
  ): Leader {
    return startLeader(this, resource, optionsOrFn, maybeFn);
  }

  /**
   * A counting semaphore `name` on these nodes: at most `options.limit`
   * permits held at once, handed to waiters in order. Throws
   * InvalidArgumentError on a bad name or limit.
   */
  semaphore(name: string, options: SemaphoreOptions): Semaphore {
    return new Semaphore(this.#permitHost(), name, options);
  }

  /** A read-write lock `name` on these nodes: many readers or one writer, writers not starved. */
  readWriteLock(name: string): ReadWriteLock {
    return new ReadWriteLock(this.#permitHost(), name);
  }

  #permitHost(): PermitHost {
    this.#checkOpen();
    return {
      nodes: this.#nodes,
      settings: this.settings,
      clock: this.#clock,
      closing: this.#closing.signal,
      track: (promise) => this.#track(promise),
    };
  }

  /** Reads `resource` on every node: holder, remaining ttl and fence counter. */
  async inspect(resource: string): Promise<ResourceState> {
    if (typeof resource !== 'string') {
      throw new InvalidArgumentError(`inspect() takes one resource name, got ${show(resource)}`);
    }
    const [name] = resolveResources(resource);
    this.#checkOpen();
    await this.#firstConnection();
    const prefix = this.settings.keyPrefix;
    const round = await fanOut({
      nodes: this.#nodes,
      quorum: this.#nodes.length,
      timeout: this.#timeout(this.settings.ttl),
      clock: this.#clock,
      call: (node, signal) => node.inspect(lockKey(prefix, name!), fenceKey(prefix, name!), signal),
      judge: () => ({ yes: true, status: 'acquired' }),
    });
    const { outcomes, replies } = await round.settled;
    const nodes: NodeState[] = outcomes.map((o, i) => {
      const reply = replies.get(i);
      if (!reply)
        return { node: o.node, value: null, pttl: null, fence: null, error: o.cause ?? o.status };
      // A key reserved for a waiter's turn is not held by anyone.
      const turn = reply.value?.startsWith(TURN_MARK) ? reply.value.slice(TURN_MARK.length) : null;
      const value = turn === null ? reply.value : null;
      return {
        node: o.node,
        value,
        pttl: value === null ? null : reply.pttl,
        fence: reply.fence,
        ...(turn === null ? {} : { turn }),
      };
    });
    const counts = new Map<string, number>();
    for (const n of nodes)
      if (n.value !== null) counts.set(n.value, (counts.get(n.value) ?? 0) + 1);
    let holder: string | null = null;
    for (const [value, count] of counts) if (count >= this.settings.quorum) holder = value;
    return { resource: name!, holder, quorum: this.settings.quorum, nodes };
  }

  /**
   * Stops renewals (held locks are abandoned: their signals abort and they
   * expire on their own), rejects pending acquisitions, waits for calls in
   * flight and closes the connections this instance opened.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = (async () => {
        for (const controller of this.#aborts) controller.abort(new ClosedError());
        this.#closing.abort(new ClosedError());
        for (const lock of [...this.#locks]) lock.abandon('the Redlock instance was closed');
        while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
        await Promise.allSettled(this.#nodes.map((n) => n.close()));
      })();
    }
    return this.#closed;
  }

  /** `close()` for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError();
  }

  /**
   * Waits, once, until a quorum of nodes has connected or every first
   * connection attempt has ended, so the first round is not lost to connecting.
   * A paused or black-holed minority does not hold it up.
   */
  #firstConnection(): Promise<unknown> {
    this.#connected ??= new Promise<void>((resolve) => {
      let ready = 0;
      let ended = 0;
      for (const node of this.#nodes) {
        Promise.resolve(node.connected ? node.connected() : true).then((ok) => {
          if (ok) ready++;
          ended++;
          if (ready >= this.settings.quorum || ended === this.#nodes.length) {
            this.#allConnected = true;
            resolve();
          }
        });
      }
    });
    return this.#connected;
  }

  #timeout(ttl: number): number {
    return this.settings.nodeTimeout ?? defaultNodeTimeout(this.#nodes, ttl);
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#background.add(promise);
    const done = () => this.#background.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /** The acquire loop shared by acquire and tryAcquire; an AcquireTimeoutError when `wait` ran out. */
  async #acquire(a: AcquireSettings): Promise<Lock | AcquireTimeoutError> {
    this.#checkOpen();
    if (a.signal?.aborted) throw a.signal.reason;
    if (!this.#allConnected) {
      const connecting = this.#firstConnection();
      // The caller's signal may be shared by many acquires: follow it through a derived one.
      await (a.signal ? raceSignal(connecting, AbortSignal.any([a.signal])) : connecting);
    }
    const prefix = randomBytes(16).toString('base64url');
    // A release can hand the lock itself only to a waiter for one resource with fencing on.
    const handable = a.wait > 0 && a.resources.length === 1 && this.settings.fencing;
    const n = this.#nodes.length;
    const plan: Plan = {
      a,
      keys: acquireKeys(this.settings.keyPrefix, a.resources),
      prefix,
      // A caller that waits queues on the nodes from its first round on.
      member: a.wait > 0 ? `${this.#id}.${prefix}${handable ? '' : '.t'}` : '',
      handable,
      grant: `${prefix}.g`,
      refusals: handable ? new Array(n) : [],
      grants: handable ? new Array<Grant | undefined>(n) : [],
      ticket: 0,
      turn: false,
      queued: false,
      answers: undefined,
      won: false,
      wonGrant: false,
      heard: this.#turnsActive,
    };
    const queueKey = a.resources.join('\u0000');
    // The common case, one round with no one of this process queueing ahead,
    // sets up nothing else.
    let first: Attempt | undefined;
    if (!(a.wait > 0 && this.#queue.busy(queueKey))) {
      first = await this.#attempt(plan, `${plan.prefix}.0`);
      if (first.kind === 'acquired') {
        if (a.signal?.aborted || this.#closed) {
          await first.lock.release().catch(() => {});
          throw a.signal?.aborted ? a.signal.reason : new ClosedError();
        }
        return first.lock;
      }
    }
    // Tracked so that close() waits until a waiter it aborted has left the queues.
    return this.#track(this.#keepTrying(plan, queueKey, first));
  }

  /**
   * Rounds after the first: line up behind this process's earlier waiters,
   * wait in the nodes' queue for a turn (announced on this instance's channel),
   * refresh the place in the queue, retry.
   */
  async #keepTrying(
    plan: Plan,
    queueKey: string,
    first: Attempt | undefined,
  ): Promise<Lock | AcquireTimeoutError> {
    const { a } = plan;
    const clock = this.#clock;
    const controller = new AbortController();
    this.#aborts.add(controller);
    if (this.#closed) controller.abort(new ClosedError());
    // Derived, not listened to: many waiters may share the caller's signal.
    const signal = a.signal ? AbortSignal.any([a.signal, controller.signal]) : controller.signal;
    const deadline = clock.now() + a.wait;
    // Wake once every node announced our turn, shortly after a quorum did, or
    // a little later after the first notice: claiming on every node keeps the
    // nodes' queues and fence counters in step.
    const wake = new Wakeup(
      clock,
      this.#nodes.length,
      Math.min(25, this.#timeout(a.ttl)),
      this.settings.quorum,
      Math.min(1, this.#timeout(a.ttl)),
    );
    if (plan.member) {
      this.#waiters.set(plan.member, { wake, plan });
      const early = this.#early.get(plan.member);
      this.#early.delete(plan.member);
      for (const [i, notice] of early ?? []) this.#onNotice(i, notice);
    }
    let leave: (() => void) | undefined;
    let listening = plan.heard;
    let attempt = 0;
    let round = first ? 1 : 0;
    let result = first;
    let lastTaken: Attempt | undefined;
    let infraFailures = 0;
    let acquired = false;

    /** Takes a turn behind earlier waiters of this process; false when `wait` ran out first. */
    const lineUp = async (): Promise<boolean> => {
      const waitOver = new AbortController();
      const cancel = Number.isFinite(deadline)
        ? clock.setTimer(() => waitOver.abort(WAIT_OVER), deadline - clock.now())
        : () => {};
      try {
        leave = await this.#queue.enter(queueKey, AbortSignal.any([signal, waitOver.signal]));
      } catch (err) {
        if (err === WAIT_OVER) return false;
        throw err;
      } finally {
        cancel();
      }
      return true;
    };
    const timedOut = (outcomes: readonly NodeOutcome[], reason?: string) =>
      new AcquireTimeoutError(
        a.resources,
        a.wait,
        lastTaken?.kind === 'taken'
          ? new LockTakenError(a.resources, lastTaken.holderTtl, lastTaken.outcomes)
          : outcomes.length > 0
            ? new QuorumError('acquire', this.settings.quorum, outcomes, reason)
            : undefined,
      );

    publish('wait', () => ({ resources: a.resources, waiting: true }));
    try {
      if (signal.aborted) throw signal.reason;
      // Waiters of this process already queue for these resources: line up behind them.
      if (!result && !(await lineUp())) return timedOut([]);
      for (;;) {
        if (!result && plan.member && !listening) {
          // Listen for turns before queueing, so no notice is missed.
          listening = await this.#listenForTurns(signal);
        }
        // Releases may have handed us the lock itself: take it without a round.
        if (!result && plan.handable) result = await this.#fromGrants(plan);
        result ??= await this.#attempt(plan, `${plan.prefix}.${round++}`);
        if (result.kind === 'taken' && plan.handable)
          result = (await this.#fromGrants(plan)) ?? result;
        if (result.kind === 'acquired') {
          acquired = true;
          if (signal.aborted) {
            await result.lock.release().catch(() => {});
            throw signal.reason;
          }
          return result.lock;
        }
        if (signal.aborted) throw signal.reason;
        if (result.kind === 'quorum') {
          // A blip (one slow moment of this process or the network) is retried;
          // nodes that stay unreachable are reported promptly.
          infraFailures++;
          if (infraFailures >= MAX_INFRA_ROUNDS || deadline - clock.now() <= 0) {
            throw new QuorumError('acquire', this.settings.quorum, result.outcomes);
          }
        } else {
          infraFailures = 0;
        }
        if (result.kind === 'taken') lastTaken = result;
        const left = deadline - clock.now();
        if (left <= 0) {
          if (a.wait === 0 && result.kind === 'retry') {
            throw new QuorumError('acquire', this.settings.quorum, result.outcomes, result.reason);
          }
          return timedOut(result.outcomes, result.kind === 'retry' ? result.reason : undefined);
        }
        const wasListening = listening;
        if (!leave) {
          // Take our turn behind earlier waiters of this process.
          if (!(await lineUp())) return timedOut(result.outcomes);
        }
        if (plan.member && !listening) listening = await this.#listenForTurns(signal);
        if (plan.member && listening && !wasListening) {
          // Listening only now: a turn may have been announced before; claim it at once.
          result = undefined;
          continue;
        }
        let delay: number;
        if (result.kind === 'taken' && result.ticketsDiffer) {
          // Nodes queued us with different tickets: agree on the highest at once.
          delay = 0;
        } else if (plan.member && listening && result.kind === 'taken') {
          // Queued: our turn is announced. Refresh the entry in time, look again
          // when the holder's key expires (it may have died), and, first in line,
          // when another waiter's turn runs out unclaimed.
          delay = QUEUE_REFRESH_MS;
          if (result.holderTtl !== undefined) delay = Math.min(delay, result.holderTtl + 1);
          // First or second in line (the first may be the one the lock is handed to).
          if (result.rank <= 1 && result.turnTtl > 0) delay = Math.min(delay, result.turnTtl + 1);
        } else {
          const holderTtl = lastTaken?.kind === 'taken' ? lastTaken.holderTtl : undefined;
          delay = Math.min(backoffDelay(attempt++, this.settings.retry), holderTtl ?? Infinity);
        }
        result = undefined;
        await wake.sleep(clock, Math.min(delay, left), signal);
        plan.turn = wake.woken;
      }
    } finally {
      publish('wait', () => ({ resources: a.resources, waiting: false }));
      this.#aborts.delete(controller);
      wake.dispose();
      if (plan.member) {
        this.#waiters.delete(plan.member);
        this.#early.delete(plan.member);
        if (!acquired && plan.queued) this.#leaveQueue(plan);
      }
      leave?.();
    }
  }

  /** The clock this instance runs on. @internal */
  get clock(): Clock {
    return this.#clock;
  }

  /** One acquire round (see docs/architecture.md), with fencing phase 2 when needed. */
  async #attempt(plan: Plan, value: string): Promise<Attempt> {
    const { a } = plan;
    const { keyPrefix, fencing, quorum, driftFactor, driftMs } = this.settings;
    const timeout = this.#timeout(a.ttl);
    const req: AcquireRequest = {
      keys: plan.keys,
      value,
      prefix: plan.prefix,
      ttl: Math.ceil(a.ttl),
      fencing,
      member: plan.member,
      ticket: plan.ticket,
      lease: QUEUE_LEASE_MS,
      grace: this.#turnGrace(a.ttl),
      channel: turnChannelPrefix(keyPrefix),
      seed: this.#fenceSeed(),
      retention: FENCE_RETENTION_MS,
    };
    let ticketMax = 0;
    let ticketMin = Infinity;
    let rank = -1;
    let turnTtl = 0;
    if (plan.member) plan.queued = true;
    // Resolves once a quorum of nodes is known to hold the lock handed to us.
    // Set while the failed round waits for its last replies: a reply that
    // completes a quorum of hand-overs ends the wait.
    let onGrants: (() => void) | undefined;
    // No later than the requests go out: the lower bound of a handed-over lock's expiry.
    const sentAt = this.#clock.now();
    let decided = false;
    const round: Round<AcquireReply> = await fanOut({
      nodes: this.#nodes,
      quorum,
      timeout,
      clock: this.#clock,
      call: (node, signal, i) => {
        const reply = node.acquire(req, signal);
        if (!plan.handable) return reply;
        // A node that answers after its deadline may still hold the lock for us: its
        // reply bounds that lock's expiry all the same, so count it, and look again.
        return reply.then((r) => {
          if (!r.ok && r.granted && !plan.won) {
            noteReply(plan, i, r, sentAt);
            // After the round: look again at once, when this completes a quorum.
            if (decided && this.#heldGrants(plan).length >= quorum) {
              onGrants?.();
              this.#waiters.get(plan.member)?.wake.wakeAfter(0);
            }
          }
          return r;
        });
      },
      judge: (reply, i) => {
        if (reply.ok) {
          if (plan.answers) plan.answers[i] = 'acquired';
          return ACQUIRED;
        }
        if (plan.member) {
          // The node queued us (or handed us the lock): leave at once if we hold it already.
          if (plan.won) {
            this.#leaveQueue(plan, [this.#nodes[i]!]);
          } else {
            plan.answers ??= [];
            plan.answers[i] = 'queued';
          }
        }
        if (plan.handable) noteReply(plan, i, reply, sentAt);
        if (reply.granted) return GRANTED;
        if (reply.ticket > 0) {
          if (reply.ticket > ticketMax) ticketMax = reply.ticket;
          if (reply.ticket < ticketMin) ticketMin = reply.ticket;
          if (rank < 0 || reply.rank < rank) rank = reply.rank;
          if (reply.rank <= 1 && reply.turnTtl > turnTtl) turnTtl = reply.turnTtl;
        }
        return reply.holderTtl >= 0
          ? { yes: false, status: 'taken', holderTtl: reply.holderTtl }
          : TAKEN;
      },
    });
    decided = true;
    const drift = a.ttl * driftFactor + driftMs;
    const finish = (result: Attempt): Attempt => {
      publish('acquire', () => ({
        resources: a.resources,
        ok: result.kind === 'acquired',
        ...(result.kind === 'acquired' ? { fences: result.lock.fences } : { reason: result.kind }),
        durationMs: this.#clock.now() - round.startedAt,
        nodes: result.kind === 'acquired' ? result.lock.nodes : result.outcomes,
      }));
      return result;
    };

    if (!round.ok) {
      this.#undo(plan, value, round);
      // Nodes may be handing us the lock itself: hear every node before judging that,
      // but no longer than until a quorum holds it (a silent node would eat the grace).
      const someGranted = plan.handable && plan.grants.some((g) => g !== undefined);
      // When every node has answered, judge on every answer: the round may have
      // failed on hand-overs to us before the holder's expiry was known on a quorum.
      let outcomes = round.outcomes;
      if (someGranted && this.#heldGrants(plan).length < quorum) {
        const settled = await Promise.race([
          round.settled,
          new Promise<undefined>((resolve) => {
            onGrants = () => resolve(undefined);
          }),
        ]);
        if (settled) outcomes = settled.outcomes;
      }
      if (isInfrastructureFailure(outcomes, quorum)) return finish({ kind: 'quorum', outcomes });
      if (ticketMax > plan.ticket) plan.ticket = ticketMax;
      return finish({
        kind: 'taken',
        holderTtl: holderTtlOnQuorum(outcomes, quorum),
        outcomes,
        ticket: plan.ticket,
        ticketsDiffer: ticketMax > 0 && ticketMin !== ticketMax,
        rank,
        turnTtl,
      });
    }

    const deadline = round.startedAt + a.ttl - drift;
    const expired = () => {
      this.#undo(plan, value, round);
      return finish({ kind: 'retry', reason: expiredReason(a.ttl), outcomes: round.outcomes });
    };
    let fences: Record<string, number> = {};
    if (fencing) {
      const n = a.resources.length;
      const choice = chooseTokens(fencesOf(round.replies.values()));
      if (choice.needsSync) {
        // Phase 2 is part of the round: it must finish inside the validity window.
        const left = deadline - this.#clock.now();
        if (left <= 0) return expired();
        const sync = await this.#syncFences(
          plan,
          [...round.replies.keys()],
          value,
          choice.tokens,
          Math.min(timeout, left),
        );
        if (!sync.ok) {
          if (deadline - this.#clock.now() <= 0) return expired();
          // Not final even when nodes failed here: the next round may succeed on others.
          this.#undo(plan, value, round);
          return finish({
            kind: 'retry',
            reason: 'the fencing token could not be confirmed on a quorum of nodes',
            outcomes: sync.outcomes,
          });
        }
      }
      fences = {};
      for (let i = 0; i < n; i++) fences[a.resources[i]!] = choice.tokens[i]!;
    }

    if (deadline - this.#clock.now() <= 0) return expired();
    const lock = new Lock(this.#ctx, {
      resources: a.resources,
      value,
      fences,
      ttl: a.ttl,
      deadline,
      nodes: round.outcomes,
      renew: a.renew,
      onLost: a.onLost,
    });
    this.#locks.add(lock);
    if (plan.member) {
      this.#members.set(lock, plan.member);
      plan.won = true;
      // Nodes whose latest answer queued us (or handed us the lock itself):
      // leave their queues now, or the entry would reach the front there and
      // waste a turn. Nodes that answer later are left as they answer.
      const answers = plan.answers;
      if (answers) {
        const queued = this.#nodes.filter((_, i) => answers[i] === 'queued');
        if (queued.length > 0) this.#leaveQueue(plan, queued);
      }
      // A node that does not answer in time may still run the round later and queue us.
      if (round.outcomes.some((o) => o.status === 'pending')) {
        this.#track(
          round.settled.then(({ outcomes }) => {
            const silent = this.#nodes.filter((_, i) => outcomes[i]?.status === 'timeout');
            if (silent.length > 0) this.#leaveQueue(plan, silent);
          }),
        );
      }
    }
    return finish({ kind: 'acquired', lock });
  }

  /**
   * The lock handed over by releases, once a quorum of nodes holds it for this
   * waiter: valid until the quorum-th latest of their lower expiry bounds, less
   * drift, and extended to the ttl soon after (`pickUp`). Undefined while too
   * few nodes hold it, or it is too close to expiring to hand to the caller.
   */
  async #fromGrants(plan: Plan): Promise<Attempt | undefined> {
    const { quorum } = this.settings;
    const now = this.#clock.now();
    const held = this.#heldGrants(plan, now);
    if (held.length < quorum) return undefined;
    held.sort((x, y) => y.deadline - x.deadline);
    const chosen = held.slice(0, quorum);
    const deadline = chosen[quorum - 1]!.deadline;
    // Too little left to be of use: a claim round (the acquire script extends it) does better.
    if (deadline - now < MIN_HANDOVER_MS) return undefined;
    const { a } = plan;
    const value = plan.grant;
    const startedAt = now;
    let token = 0;
    let differ = false;
    for (const c of chosen) {
      if (token !== 0 && c.fence !== token) differ = true;
      if (c.fence > token) token = c.fence;
    }
    const outcomes: NodeOutcome[] = this.#nodes.map((node, i) => ({
      node: node.id,
      status: plan.grants[i] ? 'acquired' : 'pending',
    }));
    if (differ) {
      // Phase 2, as for any acquisition: a quorum at least at the token, inside validity.
      const sync = await this.#syncFences(
        plan,
        chosen.map((c) => c.i),
        value,
        [token],
        Math.min(this.#timeout(a.ttl), deadline - now),
      );
      if (!sync.ok || deadline - this.#clock.now() <= 0) {
        for (const c of chosen) plan.grants[c.i] = undefined;
        return undefined;
      }
    }
    const lock = new Lock(this.#ctx, {
      resources: a.resources,
      value,
      fences: { [a.resources[0]!]: token },
      ttl: a.ttl,
      deadline,
      nodes: outcomes,
      renew: a.renew,
      onLost: a.onLost,
    });
    // Valid for the grace at first: extend it to its ttl soon, once.
    if (!a.renew) lock.pickUp();
    this.#locks.add(lock);
    this.#members.set(lock, plan.member);
    plan.won = true;
    plan.wonGrant = true;
    // Nodes that did not hand it over may still queue us.
    const others = this.#nodes.filter((_, i) => !plan.grants[i]);
    if (others.length > 0) this.#leaveQueue(plan, others, '');
    publish('acquire', () => ({
      resources: a.resources,
      ok: true,
      handover: true,
      fences: lock.fences,
      durationMs: this.#clock.now() - startedAt,
      nodes: outcomes,
    }));
    return { kind: 'acquired', lock };
  }

  /** The nodes that hold a lock handed to this waiter, valid past `now` less drift. */
  #heldGrants(
    plan: Plan,
    now = this.#clock.now(),
  ): Array<{ i: number; deadline: number; fence: number }> {
    const { driftFactor, driftMs } = this.settings;
    const held: Array<{ i: number; deadline: number; fence: number }> = [];
    plan.grants.forEach((g, i) => {
      if (!g || g.expiry === undefined) return;
      const deadline = g.expiry - (g.span * driftFactor + driftMs);
      if (deadline > now) held.push({ i, deadline, fence: g.fence });
    });
    return held;
  }

  /** A release call: give back `value`, remove `leaving` from the queues, put back `restore` or hand on. */
  #releaseRequest(
    keys: readonly string[],
    value: string,
    leaving: string,
    restore: string,
    ttl: number,
  ): ReleaseRequest {
    return {
      keys,
      value,
      leaving,
      grace: this.#turnGrace(ttl),
      channel: turnChannelPrefix(this.settings.keyPrefix),
      restore,
      seed: this.#fenceSeed(),
      retention: FENCE_RETENTION_MS,
    };
  }

  /** The seed this client proposes for a fence counter that is missing, µs (docs/safety.md §3). */
  #fenceSeed(): number {
    return Math.floor(this.#clock.wallNow() * 1000) + FENCE_SEED_MARGIN_US;
  }

  /**
   * How long a lock or turn handed to a waiter stays reserved for it, ms: enough for
   * the notice and the claim round, short because a turn handed to a waiter
   * that died is lost time for everyone behind it.
   */
  #turnGrace(ttl: number): number {
    return Math.ceil(
      Math.min(MAX_TURN_GRACE_MS, Math.max(MIN_TURN_GRACE_MS, 2 * this.#timeout(ttl))),
    );
  }

  /**
   * Undoes a failed round on every node that may hold our value: all but
   * those that answered "taken" (the script writes nothing then). The release
   * goes out at once on each node's connection, behind the acquire call, so it
   * also undoes a yes that has not arrived yet; a yes that arrives after all is
   * released again. A waiter that was handed a turn keeps it on those nodes.
   */
  #undo(plan: Plan, value: string, round: Round<AcquireReply>): void {
    // A waiter woken by its turn keeps it where the claim is undone.
    const keep = plan.turn && !plan.handable ? turnMark(plan.member) : '';
    const req = this.#releaseRequest(plan.keys, value, '', keep, plan.a.ttl);
    const release = (nodes: readonly LockNode[]) => this.#releaseOn(nodes, req);
    const mayHold = this.#nodes.filter((_, i) => round.outcomes[i]?.status !== 'taken');
    if (mayHold.length > 0) release(mayHold);
    this.#track(
      round.settled.then(({ replies }) => {
        const late = [...replies.keys()]
          .filter((i) => !round.replies.has(i))
          .map((i) => this.#nodes[i]!);
        if (late.length > 0) return release(late);
        return undefined;
      }),
    );
  }

  /**
   * Leaves the queues of `nodes`, handing on a turn given there. For a waiter
   * that gives up, and for one that acquired on other nodes. Best effort:
   * leases cover failures. A waiter that holds the lock handed to it keeps
   * that lock: it only leaves the queues.
   */
  #leaveQueue(
    plan: Plan,
    nodes: readonly LockNode[] = this.#nodes,
    value = plan.wonGrant ? '' : plan.handable ? plan.grant : turnMark(plan.member),
  ): void {
    this.#releaseOn(nodes, this.#releaseRequest(plan.keys, value, plan.member, '', plan.a.ttl));
  }

  /** Sends `req` to every one of `nodes`, in the background (close() waits for it). */
  #releaseOn(nodes: readonly LockNode[], req: ReleaseRequest): Promise<unknown> {
    return this.#track(
      fanOut({
        nodes,
        quorum: nodes.length,
        timeout: this.#timeout(this.settings.ttl),
        clock: this.#clock,
        call: (node, signal) => node.release(req, signal),
        judge: () => RELEASED,
      }).then((r) => r.settled),
    );
  }

  /**
   * Fence phase 2 on the nodes at `indexes`: raise each resource's counter to
   * its token and confirm the nodes still hold `value`.
   */
  #syncFences(
    plan: Plan,
    indexes: readonly number[],
    value: string,
    tokens: readonly number[],
    timeout: number,
  ): Promise<Round<boolean>> {
    const n = plan.a.resources.length;
    const keys = plan.keys.slice(0, n);
    const fenceKeys = plan.keys.slice(n, 2 * n);
    return fanOut({
      nodes: indexes.map((i) => this.#nodes[i]!),
      quorum: this.settings.quorum,
      timeout,
      clock: this.#clock,
      call: (node, signal) =>
        node.fenceSync(keys, fenceKeys, value, tokens, FENCE_RETENTION_MS, signal),
      judge: (held) => (held ? ACQUIRED : TAKEN),
    });
  }

  /**
   * A notice from node `i` on this instance's channel (see scripts/release.lua):
   * '<member> <key>' a turn; '<member> <key> g <fence> <grace>' the lock itself,
   * handed over; '<member> <key> <grace>' the waiter just ahead was handed the
   * lock or a turn: look again once its grace has passed.
   */
  #onNotice(i: number, notice: string): void {
    const [member = '', key = '', third, fence, span] = notice.split(' ');
    const waiter = this.#waiters.get(member);
    if (!waiter) {
      if (!member.startsWith(`${this.#id}.`) || (third !== undefined && third !== 'g')) return;
      // Its round is still on the way back: keep the notice for it.
      const early = this.#early.get(member) ?? [];
      if (early.length < 16) early.push([i, notice]);
      this.#early.set(member, early);
      this.#clock.setTimer(() => this.#early.delete(member), QUEUE_LEASE_MS, {
        keepAlive: false,
      });
      return;
    }
    if (third === undefined) {
      waiter.wake.notify(key);
    } else if (third === 'g') {
      const { plan } = waiter;
      if (!plan.handable) return;
      const grant: Grant = { fence: Number(fence), span: Number(span), expiry: undefined };
      const held = plan.grants[i];
      if (held && held.fence >= grant.fence) return;
      plan.grants[i] = grant;
      settleGrant(plan, i);
      waiter.wake.notify(key);
    } else {
      waiter.wake.wakeAfter(Number(third) + 1);
    }
  }

  /**
   * Subscribes, once per instance, to this instance's turn channel on every
   * node that supports it; true once active on a quorum (a turn is announced
   * by at least a quorum of nodes). Without a quorum, waiters poll.
   */
  #listenForTurns(signal: AbortSignal): Promise<boolean> {
    if (this.#turns) return this.#turns;
    const subscribing = this.#nodes.filter((n) => n.subscribe);
    const needed = this.settings.quorum;
    if (subscribing.length < needed) return Promise.resolve(false);
    const channel = `${turnChannelPrefix(this.settings.keyPrefix)}${this.#id}`;
    const turns = new Promise<boolean>((resolve) => {
      let done = 0;
      let failed = 0;
      const cancel = this.#clock.setTimer(
        () => resolve(false),
        Math.max(CONNECT_WAIT_MS, this.#timeout(this.settings.ttl)),
      );
      // Like a round: stop waiting as soon as the outcome is certain.
      const finish = (ok: boolean) => {
        if (ok) done++;
        else failed++;
        if (done === needed) {
          cancel();
          resolve(true);
        } else if (failed > subscribing.length - needed) {
          cancel();
          resolve(false);
        }
      };
      for (const node of subscribing) {
        const i = this.#nodes.indexOf(node);
        const onNotice = (notice?: string) => {
          if (notice) this.#onNotice(i, notice);
        };
        node.subscribe!(channel, onNotice, this.#closing.signal).then(
          () => finish(true),
          () => finish(false),
        );
      }
    });
    this.#turns = turns;
    // A failed subscription is tried again by a later waiter.
    turns.then((ok) => {
      if (this.#turns !== turns) return;
      if (ok) this.#turnsActive = true;
      else this.#turns = undefined;
    });
    return signal.aborted ? Promise.resolve(false) : turns;
  }

  #makeContext(): LockContext {
    return {
      clock: this.#clock,
      extend: (lock, ttl) => this.#extend(lock, ttl),
      release: (lock) => this.#release(lock),
      forget: (lock) => this.#locks.delete(lock),
    };
  }

  async #extend(lock: Lock, ttl: number): Promise<ExtendResult> {
    const { keyPrefix, quorum } = this.settings;
    if (this.#closed)
      return { deadline: undefined, gone: false, outcomes: [], error: new ClosedError() };
    const keys = lock.resources.map((r) => lockKey(keyPrefix, r));
    const round = await this.#track(
      fanOut({
        nodes: this.#nodes,
        quorum,
        timeout: this.#timeout(ttl),
        clock: this.#clock,
        call: (node, signal) => node.extend(keys, lock.value, Math.ceil(ttl), signal),
        judge: (ok) => (ok ? ACQUIRED : TAKEN),
      }),
    );
    return extendOutcome(
      round,
      ttl,
      this.settings,
      this.#clock,
      lock.resources,
      'it is no longer held on a quorum of nodes',
    );
  }

  async #release(lock: Lock): Promise<readonly NodeOutcome[]> {
    const { keyPrefix, quorum } = this.settings;
    // Entries of this holder may remain where its claim was refused.
    const req = this.#releaseRequest(
      acquireKeys(keyPrefix, lock.resources),
      lock.value,
      this.#members.get(lock) ?? '',
      '',
      lock.ttlMs,
    );
    const round = await this.#track(
      fanOut({
        nodes: this.#nodes,
        quorum,
        timeout: this.#timeout(this.settings.ttl),
        clock: this.#clock,
        call: (node, signal) => node.release(req, signal),
        judge: () => RELEASED,
      }),
    );
    this.#track(round.settled);
    const error = round.ok ? undefined : new QuorumError('release', quorum, round.outcomes);
    publish('release', () => ({
      resources: lock.resources,
      ok: round.ok,
      durationMs: this.#clock.now() - round.startedAt,
      nodes: round.outcomes,
      ...(error ? { error } : {}),
    }));
    if (error) throw error;
    return round.outcomes;
  }
}

/** Lock, fence, queue and lease keys of `resources`, 4 per resource (see scripts/acquire.lua). */
function acquireKeys(prefix: string, resources: readonly string[]): string[] {
  const n = resources.length;
  const keys = new Array<string>(4 * n);
  for (let i = 0; i < n; i++) {
    const r = resources[i]!;
    keys[i] = lockKey(prefix, r);
    keys[n + i] = fenceKey(prefix, r);
    keys[2 * n + i] = queueKey(prefix, r);
    keys[3 * n + i] = leaseKey(prefix, r);
  }
  return keys;
}

/** Records what node `i` replied to a waiter that can be handed the lock, sent at `sentAt`. */
function noteReply(plan: Plan, i: number, reply: AcquireReply, sentAt: number): void {
  if (reply.ok) return;
  const held = plan.grants[i];
  if (reply.granted) {
    const { pttl, fence } = reply.granted;
    const expiry = sentAt + pttl;
    if (held && held.fence > fence) return;
    if (held && held.fence === fence && (held.expiry ?? -Infinity) >= expiry) return;
    plan.grants[i] = { fence, span: pttl, expiry };
    return;
  }
  // Refused: a lock handed over before this was processed is gone; one handed over after
  // it (its counter is higher) was set no earlier than `sentAt`.
  let refusals = plan.refusals[i];
  if (!refusals) {
    refusals = [];
    plan.refusals[i] = refusals;
  }
  refusals.push({ sentAt, fence: reply.fence });
  if (refusals.length > 4) refusals.shift();
  if (held && held.fence <= reply.fence) plan.grants[i] = undefined;
  settleGrant(plan, i);
}

/**
 * Bounds from below when node `i`'s handed-over lock expires, once a round it
 * refused before handing it over is known: the node set the key with its ttl
 * after processing that round, so after the round was sent.
 */
function settleGrant(plan: Plan, i: number): void {
  const grant = plan.grants[i];
  if (!grant || grant.expiry !== undefined) return;
  let before = -Infinity;
  for (const r of plan.refusals[i] ?? [])
    if (r.fence < grant.fence && r.sentAt > before) before = r.sentAt;
  if (before > -Infinity) grant.expiry = before + grant.span;
}

function* fencesOf(replies: Iterable<AcquireReply>): Iterable<readonly number[]> {
  for (const reply of replies) if (reply.ok) yield reply.fences;
}
