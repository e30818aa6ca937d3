/**
 * Permits over the quorum: the acquire loop, extend and release shared by the
 * counting semaphore (semaphore.ts) and the read-write lock (rwlock.ts). One
 * script (scripts/permits.lua), N nodes, the lock's rules for success: a
 * permit counts as held only when a quorum granted the same field (the same
 * slot, for a semaphore) within validity measured from the round's start;
 * failed rounds are undone on every node that may hold them, late answers
 * included; waiters queue with agreed tickets and are handed turns in order.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { publish } from '../diagnostics.js';
import {
  AcquireTimeoutError,
  ClosedError,
  InvalidArgumentError,
  LockTakenError,
  QuorumError,
} from '../errors.js';
import { type ExtendResult, Lock, type LockContext } from '../lock.js';
import {
  type AcquireOptions,
  type AcquireSettings,
  defaultNodeTimeout,
  resolveAcquire,
  type Settings,
  show,
} from '../options.js';
import { runUsing } from '../provider.js';
import { backoffDelay, Wakeup } from '../waiting.js';
import { expiredReason, extendOutcome } from './extend-round.js';
import { chooseTokens } from './fencing.js';
import type { LockNode } from './node.js';
import {
  fanOut,
  holderTtlOnQuorum,
  isInfrastructureFailure,
  type NodeOutcome,
  type Round,
} from './quorum.js';
import { scripts } from './scripts/index.js';

/** What the Redlock that makes semaphores and read-write locks lends them. @internal */
export interface PermitHost {
  readonly nodes: readonly LockNode[];
  readonly settings: Settings;
  readonly clock: Clock;
  /** Aborts when the Redlock closes: waiters give up, held permits are abandoned. */
  readonly closing: AbortSignal;
  /** Makes the Redlock's close() wait for `promise` (background undo and leave calls). */
  track<T>(promise: Promise<T>): Promise<T>;
}

/** The critical section run by `using`: gets the lost-permit signal and the permit. */
export type PermitRoutine<T> = (signal: AbortSignal, permit: Lock) => Promise<T> | T;

/**
 * Acquiring one kind of permit: a semaphore's, a read-write lock's read or
 * write side. Every permit is a `Lock` handle (`fence`, `signal`, `extend`,
 * `release`, `await using`).
 */
export interface PermitSource {
  /** The name the permits are for. */
  readonly name: string;
  /**
   * Acquires a permit, waiting until one is free, `wait` ms pass
   * (AcquireTimeoutError) or `signal` aborts (rejects with its reason).
   */
  acquire(options?: AcquireOptions): Promise<Lock>;
  /** One round by default (or `wait` ms when given); null when no permit is free. */
  tryAcquire(options?: AcquireOptions): Promise<Lock | null>;
  /**
   * Acquires a permit, runs `fn(signal, permit)` while renewing it, always
   * releases it and returns what `fn` returns; `fn`'s own error always wins.
   */
  using<T>(fn: PermitRoutine<T>): Promise<T>;
  using<T>(options: AcquireOptions, fn: PermitRoutine<T>): Promise<T>;
}

/** Kinds of permit: a semaphore slot, a reader, the writer (the last letter of a member id). */
export type PermitKind = 's' | 'r' | 'w';

/** Largest semaphore limit: each acquire looks at every slot of a node. */
export const MAX_LIMIT = 1000;

/** How often a queued waiter refreshes its place, ms (as the lock's queue). */
const QUEUE_REFRESH_MS = 1000;
const QUEUE_LEASE_MS = 3 * QUEUE_REFRESH_MS;
const FENCE_RETENTION_MS = 3_600_000;
const FENCE_SEED_MARGIN_US = 250_000;
const MAX_INFRA_ROUNDS = 3;
/** Split rounds of a semaphore retried at once before backing off. */
const MAX_SPLITS = 3;
const MIN_TURN_GRACE_MS = 50;
const MAX_TURN_GRACE_MS = 500;

/** Why a semaphore's round failed when its nodes granted different slots. */
const SPLIT = 'the nodes granted different slots';

const YES = { yes: true, status: 'acquired' } as const;
const NO = { yes: false, status: 'taken' } as const;
const RELEASED = { yes: true, status: 'released' } as const;

/** The keys of a semaphore or read-write lock `name`, in the order of permits.lua. */
export function permitKeys(prefix: string, family: 'semaphore' | 'rwlock', name: string): string[] {
  const base = `${prefix}{${name}}:${family}`;
  return [base, `${base}:expiry`, `${base}:queue`, `${base}:lease`, `${base}:fence`];
}

/** Checks a permit name before any I/O. */
export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidArgumentError(`${what} needs a non-empty string name, got ${show(name)}`);
  }
  return name;
}

type Reply = readonly [number, number | string, number, number];

type Attempt =
  | { kind: 'acquired'; lock: Lock }
  | {
      kind: 'taken';
      holderTtl: number | undefined;
      outcomes: readonly NodeOutcome[];
      differ: boolean;
    }
  | { kind: 'quorum'; outcomes: readonly NodeOutcome[] }
  | { kind: 'retry'; reason: string; outcomes: readonly NodeOutcome[] };

interface Plan {
  readonly a: AcquireSettings;
  readonly member: string;
  readonly prefix: string;
  readonly waits: boolean;
  ticket: number;
  /** True once the nodes may hold a queue entry of this waiter. */
  queued: boolean;
  /** True after a notice announced this waiter's turn: undoing a failed claim keeps it. */
  turn: boolean;
  /** The slot a semaphore prefers: the one most nodes granted in a split round. */
  hint: string;
}

/** What each held permit needs to be extended and released. */
interface Held {
  readonly field: string;
  readonly member: string;
}

/**
 * What the permits of one Redlock share: one notice channel, subscribed once,
 * and the held permits, abandoned when the Redlock closes.
 */
class Notices {
  readonly id = randomBytes(9).toString('base64url');
  readonly locks = new Set<Lock>();
  /** Waiters of this Redlock by member, with how many turns each has woken for. */
  readonly waiters = new Map<string, { wake: Wakeup; epoch: number }>();
  #active: Promise<boolean> | undefined;
  #seq = 0;

  constructor(readonly host: PermitHost) {
    host.closing.addEventListener(
      'abort',
      () => {
        for (const lock of [...this.locks]) lock.abandon('the Redlock instance was closed');
      },
      { once: true },
    );
  }

  get channelPrefix(): string {
    return `${this.host.settings.keyPrefix}permit-turn:`;
  }

  nextMember(kind: PermitKind): string {
    return `${this.id}.${this.#seq++}${kind}`;
  }

  /** Subscribes on every node that can; true once active on a quorum (else waiters poll). */
  listen(): Promise<boolean> {
    if (this.#active) return this.#active;
    const { nodes, settings, clock, closing } = this.host;
    const subscribing = nodes.filter((n) => n.subscribe);
    const needed = settings.quorum;
    if (subscribing.length < needed) return Promise.resolve(false);
    const onNotice = (payload?: string) => {
      const [member = '', key] = (payload ?? '').split(' ');
      const waiter = this.waiters.get(member);
      // Counted per turn: a waiter may be handed a turn again after letting one lapse.
      waiter?.wake.notify(`${key}#${waiter.epoch}`);
    };
    const active = new Promise<boolean>((resolve) => {
      let done = 0;
      let failed = 0;
      const cancel = clock.setTimer(() => resolve(false), 2000, { keepAlive: false });
      const finish = (ok: boolean) => {
        if (ok) done++;
        else failed++;
        if (done === needed || failed > subscribing.length - needed) {
          cancel();
          resolve(done === needed);
        }
      };
      for (const node of subscribing) {
        node.subscribe!(`${this.channelPrefix}${this.id}`, onNotice, closing).then(
          () => finish(true),
          () => finish(false),
        );
      }
    });
    this.#active = active;
    active.then((ok) => {
      if (!ok && this.#active === active) this.#active = undefined;
    });
    return active;
  }
}

const noticesOf = new WeakMap<AbortSignal, Notices>();

/**
 * One kind of permit on one name: a semaphore's (kind 's' with its limit), or
 * a read-write lock's readers ('r') or writer ('w').
 */
export class PermitEngine implements PermitSource {
  readonly name: string;
  readonly #host: PermitHost;
  readonly #kind: PermitKind;
  readonly #limit: number;
  readonly #keys: readonly string[];
  readonly #notices: Notices;
  readonly #ctx: LockContext;
  readonly #held = new WeakMap<Lock, Held>();
  /** What the diagnostics events call these permits. */
  readonly #label: string;

  constructor(host: PermitHost, name: string, kind: PermitKind, limit: number, keys: string[]) {
    this.#host = host;
    this.name = name;
    this.#kind = kind;
    this.#limit = limit;
    this.#keys = keys;
    this.#label = kind === 's' ? 'semaphore' : kind === 'r' ? 'read' : 'write';
    let notices = noticesOf.get(host.closing);
    if (!notices) {
      notices = new Notices(host);
      noticesOf.set(host.closing, notices);
    }
    this.#notices = notices;
    this.#ctx = {
      clock: host.clock,
      extend: (lock, ttl) => this.#extend(lock, ttl),
      release: (lock) => this.#release(lock),
      forget: (lock) => this.#notices.locks.delete(lock),
    };
  }

  async acquire(options?: AcquireOptions): Promise<Lock> {
    const a = resolveAcquire(this.name, options, this.#host.settings, Number.POSITIVE_INFINITY);
    const result = await this.#acquire(a);
    if (result instanceof Lock) return result;
    throw result;
  }

  async tryAcquire(options?: AcquireOptions): Promise<Lock | null> {
    const a = resolveAcquire(this.name, options, this.#host.settings, 0);
    const result = await this.#acquire(a);
    return result instanceof Lock ? result : null;
  }

  using<T>(fn: PermitRoutine<T>): Promise<T>;
  using<T>(options: AcquireOptions, fn: PermitRoutine<T>): Promise<T>;
  using<T>(optionsOrFn: AcquireOptions | PermitRoutine<T>, maybeFn?: PermitRoutine<T>): Promise<T> {
    return runUsing(
      { acquire: (_resources, options) => this.acquire(options) },
      this.#host.settings,
      this.name,
      optionsOrFn,
      maybeFn,
    );
  }

  #timeout(ttl: number): number {
    return this.#host.settings.nodeTimeout ?? defaultNodeTimeout(this.#host.nodes, ttl);
  }

  #grace(ttl: number): number {
    return Math.ceil(
      Math.min(MAX_TURN_GRACE_MS, Math.max(MIN_TURN_GRACE_MS, 2 * this.#timeout(ttl))),
    );
  }

  /** Runs one operation of permits.lua on `node`. */
  #call(node: LockNode, args: readonly string[], signal: AbortSignal): Promise<unknown> {
    if (!node.run) {
      return Promise.reject(
        new Error(`${node.id} cannot run semaphore or read-write lock scripts`),
      );
    }
    return node.run(scripts.permits, this.#keys, args, signal);
  }

  /** Arguments of permits.lua shared by every operation (ARGV[1..9]). */
  #args(
    op: string,
    value: string,
    field: string,
    member: string,
    n: number,
    ttl: number,
  ): string[] {
    const channel = this.#notices.channelPrefix;
    return [
      op,
      this.#kind,
      String(this.#limit),
      value,
      field,
      member,
      String(n),
      String(this.#grace(ttl)),
      channel,
    ];
  }

  /** The field of this kind for `member` when it is fixed ('' for a semaphore: any slot). */
  #fieldOf(member: string): string {
    return this.#kind === 'w' ? 'w' : this.#kind === 'r' ? `r${member}` : '';
  }

  async #acquire(a: AcquireSettings): Promise<Lock | AcquireTimeoutError> {
    const host = this.#host;
    if (host.closing.aborted) throw new ClosedError();
    if (a.signal?.aborted) throw a.signal.reason;
    const plan: Plan = {
      a,
      member: this.#notices.nextMember(this.#kind),
      prefix: randomBytes(16).toString('base64url'),
      waits: a.wait > 0,
      ticket: 0,
      queued: false,
      turn: false,
      hint: '',
    };
    const { clock, settings } = host;
    // One signal per acquisition: its waits listen to it, not to the shared ones.
    const signal = AbortSignal.any(a.signal ? [a.signal, host.closing] : [host.closing]);
    const deadline = clock.now() + a.wait;
    const timeout = this.#timeout(a.ttl);
    const wake = new Wakeup(
      clock,
      host.nodes.length,
      Math.min(25, timeout),
      settings.quorum,
      Math.min(1, timeout),
    );
    let listening = false;
    let acquired = false;
    let waiting = false;
    let infra = 0;
    let backoff = 0;
    let splits = 0;
    let lastTaken: Extract<Attempt, { kind: 'taken' }> | undefined;
    const waiter = { wake, epoch: 0 };
    if (plan.waits) this.#notices.waiters.set(plan.member, waiter);
    try {
      for (let round = 0; ; round++) {
        // Listen before queueing, so no turn is announced unheard.
        if (plan.waits && !listening) listening = await this.#notices.listen();
        const result = await this.#attempt(plan, `${plan.prefix}.${round}`);
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
          if (++infra >= MAX_INFRA_ROUNDS || deadline - clock.now() <= 0) {
            throw new QuorumError('acquire', settings.quorum, result.outcomes);
          }
        } else {
          infra = 0;
        }
        if (result.kind === 'taken') lastTaken = result;
        const left = deadline - clock.now();
        if (left <= 0) {
          if (a.wait === 0 && result.kind === 'retry') {
            throw new QuorumError('acquire', settings.quorum, result.outcomes, result.reason);
          }
          return new AcquireTimeoutError(
            [this.name],
            a.wait,
            lastTaken
              ? new LockTakenError([this.name], lastTaken.holderTtl, lastTaken.outcomes)
              : new QuorumError(
                  'acquire',
                  settings.quorum,
                  result.outcomes,
                  result.kind === 'retry' ? result.reason : undefined,
                ),
          );
        }
        if (!waiting) {
          waiting = true;
          publish('wait', () => ({
            resources: [this.name],
            waiting: true,
            primitive: this.#label,
          }));
        }
        if (result.kind === 'retry' && result.reason === SPLIT && ++splits <= MAX_SPLITS) {
          // Our slots are reserved (turns) or were just ours: ask again at once
          // for the slot most nodes gave, keeping any turn.
          continue;
        }
        let delay: number;
        if (result.kind === 'taken' && result.differ) {
          delay = 0; // the nodes gave different tickets: agree on the highest at once
        } else if (result.kind === 'taken' && listening) {
          // Queued: the turn is announced; refresh the entry in time and look
          // again when the permit in the way expires (its holder may have died).
          delay = Math.min(QUEUE_REFRESH_MS, (result.holderTtl ?? Infinity) + 1);
        } else {
          delay = Math.min(
            backoffDelay(backoff++, settings.retry),
            (lastTaken?.holderTtl ?? Infinity) + 1,
          );
        }
        await wake.sleep(clock, Math.min(delay, left), signal);
        plan.turn = wake.woken;
        if (wake.woken) waiter.epoch++;
      }
    } finally {
      wake.dispose();
      this.#notices.waiters.delete(plan.member);
      if (!acquired && plan.queued) this.#leave(plan, host.nodes);
      if (waiting)
        publish('wait', () => ({ resources: [this.name], waiting: false, primitive: this.#label }));
    }
  }

  /** One acquire round, with fencing phase 2 when the granting nodes' counters differ. */
  async #attempt(plan: Plan, value: string): Promise<Attempt> {
    const { a } = plan;
    const { nodes, settings, clock } = this.#host;
    const { quorum, fencing, driftFactor, driftMs } = settings;
    const timeout = this.#timeout(a.ttl);
    const args = [
      ...this.#args(
        'acquire',
        value,
        this.#fieldOf(plan.member),
        plan.member,
        Math.ceil(a.ttl),
        a.ttl,
      ),
      plan.prefix,
      plan.waits ? '1' : '0',
      String(plan.ticket),
      String(QUEUE_LEASE_MS),
      fencing ? '1' : '0',
      String(Math.floor(clock.wallNow() * 1000) + FENCE_SEED_MARGIN_US),
      plan.hint,
      String(FENCE_RETENTION_MS),
    ];
    if (plan.waits) plan.queued = true;
    let ticketMin = Infinity;
    let ticketMax = 0;
    const round: Round<Reply> = await fanOut({
      nodes,
      quorum,
      timeout,
      clock,
      call: (node, signal) => this.#call(node, args, signal) as Promise<Reply>,
      judge: (reply) => {
        if (reply[0] === 1) return YES;
        const ticket = Number(reply[2]);
        if (ticket > 0) {
          ticketMin = Math.min(ticketMin, ticket);
          ticketMax = Math.max(ticketMax, ticket);
        }
        const pttl = Number(reply[1]);
        return pttl >= 0 ? { yes: false, status: 'taken', holderTtl: pttl } : NO;
      },
    });
    const finish = (result: Attempt): Attempt => {
      publish('acquire', () => ({
        resources: [this.name],
        primitive: this.#label,
        ok: result.kind === 'acquired',
        ...(result.kind === 'acquired' ? { fences: result.lock.fences } : { reason: result.kind }),
        durationMs: clock.now() - round.startedAt,
        nodes: result.kind === 'acquired' ? result.lock.nodes : result.outcomes,
      }));
      return result;
    };
    const undoAll = () => this.#undo(plan, value, round, () => true, true);

    if (!round.ok) {
      if (ticketMax > plan.ticket) plan.ticket = ticketMax;
      undoAll();
      if (isInfrastructureFailure(round.outcomes, quorum))
        return finish({ kind: 'quorum', outcomes: round.outcomes });
      return finish({
        kind: 'taken',
        holderTtl: holderTtlOnQuorum(round.outcomes, quorum),
        outcomes: round.outcomes,
        differ: ticketMax > 0 && ticketMin !== ticketMax,
      });
    }

    // A permit is one field held on a quorum. Readers and the writer always ask
    // for one field; a semaphore's nodes may grant different slots.
    // A split round fails at once rather than wait for the other answers (a
    // paused node would hold it up for nodeTimeout); the next round asks for
    // the slot most nodes gave, and a late grant is undone when it lands.
    const granted = round.replies;
    const field = agreedField(granted, quorum);
    const drift = a.ttl * driftFactor + driftMs;
    const deadline = round.startedAt + a.ttl - drift;
    if (field === undefined) {
      plan.hint = mostGranted(granted);
      undoAll();
      return finish({ kind: 'retry', reason: SPLIT, outcomes: round.outcomes });
    }
    const agreed = field;
    // Our value on another slot of some node takes room for nothing: give it back.
    this.#undo(plan, value, round, (reply) => String(reply[1]) !== agreed, false);
    const expired = () => {
      undoAll();
      return finish({ kind: 'retry', reason: expiredReason(a.ttl), outcomes: round.outcomes });
    };

    let fences: Record<string, number> = {};
    if (fencing) {
      const yes = [...granted].filter(([, r]) => String(r[1]) === agreed);
      const choice = chooseTokens(yes.map(([, r]) => [Number(r[2])]));
      if (choice.needsSync) {
        const left = deadline - clock.now();
        if (left <= 0) return expired();
        const token = choice.tokens[0]!;
        const syncArgs = [
          ...this.#args('sync', value, agreed, plan.member, token, a.ttl),
          String(FENCE_RETENTION_MS),
        ];
        const sync = await fanOut({
          nodes: yes.map(([i]) => nodes[i]!),
          quorum,
          timeout: Math.min(timeout, left),
          clock,
          call: (node, signal) => this.#call(node, syncArgs, signal),
          judge: (held) => (held === 1 ? YES : NO),
        });
        if (!sync.ok) {
          if (deadline - clock.now() <= 0) return expired();
          undoAll();
          return finish({
            kind: 'retry',
            reason: 'the fencing token could not be confirmed on a quorum of nodes',
            outcomes: sync.outcomes,
          });
        }
      }
      fences = { [this.name]: choice.tokens[0]! };
    }
    if (deadline - clock.now() <= 0) return expired();
    const lock = new Lock(this.#ctx, {
      resources: [this.name],
      value,
      fences,
      ttl: a.ttl,
      deadline,
      nodes: round.outcomes,
      renew: a.renew,
      onLost: a.onLost,
    });
    this.#held.set(lock, { field: agreed, member: plan.member });
    this.#notices.locks.add(lock);
    if (plan.queued) {
      // Nodes that refused this round queued us: leave their queues now.
      this.#host.track(
        round.settled.then(({ outcomes }) => {
          const refused = nodes.filter((_, i) => outcomes[i]?.status === 'taken');
          if (refused.length > 0) this.#leave(plan, refused);
        }),
      );
    }
    return finish({ kind: 'acquired', lock });
  }

  /**
   * Releases `value` on the nodes whose grant passes `which`: those that
   * granted by the decision now, those whose grant arrives later when it
   * does, and, for a failed round (`failed`), the undecided ones at once too
   * (the release travels behind the acquire). A waiter that was handed a turn
   * keeps it where its failed claim is undone.
   */
  #undo(
    plan: Plan,
    value: string,
    round: Round<Reply>,
    which: (reply: Reply) => boolean,
    failed: boolean,
  ): void {
    const { nodes } = this.#host;
    const args = [
      ...this.#args('release', value, this.#fieldOf(plan.member), plan.member, 0, plan.a.ttl),
      '',
      failed && plan.turn ? plan.member : '',
    ];
    const release = (targets: readonly LockNode[], requeue = '0') => {
      if (targets.length > 0) this.#fanRelease(targets, [...args, requeue, String(QUEUE_LEASE_MS)]);
    };
    // A waiter whose failed round was granted somewhere goes back into that
    // node's queue in its place (the grant took it out), so that every node
    // orders the same waiters. Not after a late yes: the waiter may hold by then.
    release(
      nodes.filter((_, i) => {
        const reply = round.replies.get(i);
        if (reply) return which(reply);
        return failed && round.outcomes[i]?.status !== 'taken';
      }),
      failed && !plan.turn && plan.waits ? String(plan.ticket) : '0',
    );
    this.#host.track(
      round.settled.then(({ replies }) => {
        // Undecided nodes were released at once when the round failed; a late
        // yes is released again.
        const late = [...replies].filter(([i, r]) => !round.replies.has(i) && which(r));
        release(late.map(([i]) => nodes[i]!));
      }),
    );
  }

  /** Leaves the queues of `nodes`, handing on a turn given there. Best effort: leases cover failures. */
  #leave(plan: Plan, nodes: readonly LockNode[]): void {
    const args = [
      ...this.#args(
        'release',
        `~turn~${plan.member}`,
        this.#fieldOf(plan.member),
        plan.member,
        0,
        plan.a.ttl,
      ),
      plan.member,
      '',
    ];
    this.#fanRelease(nodes, args);
  }

  #fanRelease(nodes: readonly LockNode[], args: readonly string[]): void {
    this.#host.track(
      fanOut({
        nodes,
        quorum: nodes.length,
        timeout: this.#timeout(this.#host.settings.ttl),
        clock: this.#host.clock,
        call: (node, signal) => this.#call(node, args, signal),
        judge: () => RELEASED,
      }).then((r) => r.settled),
    );
  }

  async #extend(lock: Lock, ttl: number): Promise<ExtendResult> {
    const { nodes, settings, clock, closing } = this.#host;
    if (closing.aborted)
      return { deadline: undefined, gone: false, outcomes: [], error: new ClosedError() };
    const held = this.#held.get(lock)!;
    const args = this.#args('extend', lock.value, held.field, held.member, Math.ceil(ttl), ttl);
    const round = await this.#host.track(
      fanOut({
        nodes,
        quorum: settings.quorum,
        timeout: this.#timeout(ttl),
        clock,
        call: (node, signal) => this.#call(node, args, signal),
        judge: (ok) => (ok === 1 ? YES : NO),
      }),
    );
    return extendOutcome(
      round,
      ttl,
      settings,
      clock,
      lock.resources,
      'the permit is no longer held on a quorum of nodes',
      { primitive: this.#label },
    );
  }

  async #release(lock: Lock): Promise<readonly NodeOutcome[]> {
    const { nodes, settings, clock } = this.#host;
    const held = this.#held.get(lock)!;
    // '' for the field: our value may also sit on another slot of a node that granted late.
    const field = this.#kind === 's' ? '' : held.field;
    const args = [
      ...this.#args('release', lock.value, field, held.member, 0, lock.ttlMs),
      held.member,
      '',
    ];
    const round = await this.#host.track(
      fanOut({
        nodes,
        quorum: settings.quorum,
        timeout: this.#timeout(settings.ttl),
        clock,
        call: (node, signal) => this.#call(node, args, signal),
        judge: () => RELEASED,
      }),
    );
    this.#host.track(round.settled);
    const error = round.ok
      ? undefined
      : new QuorumError('release', settings.quorum, round.outcomes);
    publish('release', () => ({
      resources: lock.resources,
      primitive: this.#label,
      ok: round.ok,
      durationMs: clock.now() - round.startedAt,
      nodes: round.outcomes,
      ...(error ? { error } : {}),
    }));
    if (error) throw error;
    return round.outcomes;
  }
}

/** The field granted by at least `quorum` of the replies, if any. */
function agreedField(replies: ReadonlyMap<number, Reply>, quorum: number): string | undefined {
  const counts = new Map<string, number>();
  for (const reply of replies.values()) {
    const f = String(reply[1]);
    const c = (counts.get(f) ?? 0) + 1;
    if (c >= quorum) return f;
    counts.set(f, c);
  }
  return undefined;
}

/**
 * The slot granted by the most replies, the lowest on a tie, so that waiters
 * whose turns crossed between nodes ask for the same slot and swap.
 */
function mostGranted(replies: ReadonlyMap<number, Reply>): string {
  const counts = new Map<number, number>();
  for (const reply of replies.values()) {
    const slot = Number(reply[1]);
    counts.set(slot, (counts.get(slot) ?? 0) + 1);
  }
  const [best] = [...counts].sort(([a, ca], [b, cb]) => cb - ca || a - b);
  return best === undefined ? '' : String(best[0]);
}
