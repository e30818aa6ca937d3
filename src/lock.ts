/**
 * A held lock: its validity, extension, release, background renewal and the
 * lost-lock signal.
 */
import type { Clock } from './clock.js';
import { publish } from './diagnostics.js';
import { LockError, LockLostError } from './errors.js';
import { resolveTtl } from './options.js';
import type { NodeOutcome } from './outcome.js';

/** Result of an extend round, as the Lock needs it. */
export interface ExtendResult {
  /** Monotonic deadline of the extended validity, or undefined when the round failed. */
  readonly deadline: number | undefined;
  /** True when the round proved our value is gone from too many nodes to keep the lock. */
  readonly gone: boolean;
  readonly outcomes: readonly NodeOutcome[];
  /** The error to raise when the round failed. */
  readonly error?: LockError;
}

/** What a Lock needs from the Redlock that made it. */
export interface LockContext {
  readonly clock: Clock;
  /** Runs an extend round from now with `ttl`. Never rejects. */
  extend(lock: Lock, ttl: number): Promise<ExtendResult>;
  /** Runs a release round; rejects with a QuorumError when too few nodes answered. */
  release(lock: Lock): Promise<readonly NodeOutcome[]>;
  /** The lock has ended (released or lost); the context drops it. */
  forget(lock: Lock): void;
}

/** Internal construction parameters of a Lock. */
export interface LockInit {
  readonly resources: readonly string[];
  readonly value: string;
  readonly fences: Readonly<Record<string, number>>;
  readonly ttl: number;
  /** Monotonic deadline of validity, ms. */
  readonly deadline: number;
  readonly nodes: readonly NodeOutcome[];
  readonly renew: boolean;
  readonly onLost: ((error: LockLostError) => void) | undefined;
}

/**
 * A lock held on a quorum of nodes. It is valid until `validUntil`; extend it
 * or let it renew itself, and release it when done (or use `await using`).
 */
export class Lock implements AsyncDisposable {
  /** The locked resources, in the order given. */
  readonly resources: readonly string[];
  /** This holder's unguessable value (128 random bits and a round number). */
  readonly value: string;
  /** Fencing token of each resource (empty when fencing is off). */
  readonly fences: Readonly<Record<string, number>>;

  readonly #ctx: LockContext;
  /** Created on first use of `signal`: most locks are released without anyone listening. */
  #controller: AbortController | undefined;
  /** Why the lock ended (released or lost); undefined while held. */
  #ended: LockLostError | undefined;
  readonly #onLost: LockInit['onLost'];
  #ttl: number;
  #deadline: number;
  #nodes: readonly NodeOutcome[];
  #cancelExpiry: () => void = () => {};
  #cancelRenewal: (() => void) | undefined;
  #renewing = false;
  /** True when renewal stops after its first successful extend (pickUp). */
  #renewOnce = false;
  #extending: Promise<void> | undefined;
  #release: Promise<void> | undefined;

  /** @internal Locks are made by Redlock. */
  constructor(ctx: LockContext, init: LockInit) {
    this.#ctx = ctx;
    this.resources = init.resources;
    this.value = init.value;
    this.fences = init.fences;
    this.#ttl = init.ttl;
    this.#deadline = init.deadline;
    this.#nodes = init.nodes;
    this.#onLost = init.onLost;
    this.#armExpiry();
    if (init.renew) this.startRenewal();
  }

  /** The ttl of the last successful acquire or extend, ms. @internal */
  get ttlMs(): number {
    return this.#ttl;
  }

  /** Fencing token of the first resource; `undefined` when fencing is off. */
  get fence(): number | undefined {
    return this.fences[this.resources[0]!];
  }

  /** Milliseconds of validity left, from the monotonic clock (≤ 0 once expired). */
  remaining(): number {
    return this.#deadline - this.#ctx.clock.now();
  }

  /** Epoch-ms estimate of when validity ends (for display; use `remaining()` for decisions). */
  get validUntil(): number {
    return this.#ctx.clock.wallNow() + this.remaining();
  }

  /** Aborts with a LockLostError when the lock is lost, expires or is released. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#ended) this.#controller.abort(this.#ended);
    }
    return this.#controller.signal;
  }

  /** Per-node outcomes of the last round on this lock. */
  get nodes(): readonly NodeOutcome[] {
    return this.#nodes;
  }

  /** True while the lock is neither released nor lost. */
  get held(): boolean {
    return this.#ended === undefined;
  }

  /**
   * Extends the lock to `ttl` ms (default: its current ttl) from the start of
   * this round. Rejects with LockLostError if the lock is gone, or with a
   * QuorumError if too few nodes answered — then the lock stays valid until
   * its old deadline.
   */
  async extend(ttl?: number): Promise<void> {
    const newTtl = resolveTtl(ttl, this.#ttl);
    if (this.#ended) throw this.#ended;
    const result = await this.#ctx.extend(this, newTtl);
    this.#nodes = result.outcomes;
    if (!this.held) {
      // Declared lost while the round ran, yet the round pushed our keys' expiry
      // back. Nobody holds the lock now, but the old validity still stands and
      // a holder may act on it: delete the keys only once it has run out.
      if (result.deadline !== undefined && !this.#release) {
        this.#ctx.clock.setTimer(
          () => {
            this.release().catch(() => {});
          },
          Math.max(0, this.remaining()),
          { keepAlive: false },
        );
      }
      throw this.#ended;
    }
    if (result.deadline !== undefined) {
      this.#ttl = newTtl;
      if (result.deadline > this.#deadline) {
        this.#deadline = result.deadline;
        this.#armExpiry();
      }
      return;
    }
    if (result.gone) {
      const lost = new LockLostError(
        this.resources,
        'another holder has it or it expired',
        result.error,
      );
      this.#lose(lost);
      throw lost;
    }
    throw result.error;
  }

  /**
   * Releases the lock on every node. Idempotent; resolves for a lock that has
   * already expired and never deletes another holder's key. Rejects with a
   * QuorumError only when too few nodes could be reached to confirm.
   */
  release(): Promise<void> {
    if (!this.#release) {
      this.#stop();
      if (!this.#ended) {
        this.#end(LockLostError.released(this.resources));
      }
      this.#release = this.#ctx.release(this).then((outcomes) => {
        this.#nodes = outcomes;
      });
      this.#ctx.forget(this);
    }
    return this.#release;
  }

  /** Releases the lock (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  /**
   * Renews the lock about every ttl/3 with its own ttl until it is released or
   * lost; failed extends are retried quickly while the lock is still valid.
   * @internal Turned on by `renew: true`, `using` and leader election.
   */
  startRenewal(): void {
    if (this.#renewing || !this.held) return;
    this.#renewOnce = false;
    this.#renewing = true;
    this.#scheduleRenewal(this.#nextRenewal());
  }

  /**
   * Extends the lock to its ttl once, soon, retrying while it is still valid:
   * for a lock that was handed over with a short first validity.
   * @internal
   */
  pickUp(): void {
    if (this.#renewing || !this.held) return;
    this.#renewOnce = true;
    this.#renewing = true;
    this.#scheduleRenewal(Math.max(0, this.remaining() / 3));
  }

  /** About every ttl/3, but never later than halfway through the validity left. */
  #nextRenewal(): number {
    return Math.max(0, Math.min(this.#ttl / 3, this.remaining() / 2));
  }

  /**
   * Ends the lock without releasing it: its provider is closing, or its
   * backend saw the hold end (session closed). @internal
   */
  abandon(reason: string, cause?: unknown): void {
    this.#stop();
    this.#lose(new LockLostError(this.resources, reason, cause));
  }

  #scheduleRenewal(delay: number): void {
    this.#cancelRenewal?.();
    this.#cancelRenewal = this.#ctx.clock.setTimer(() => this.#renewTick(), delay);
  }

  #renewTick(): void {
    this.#cancelRenewal = undefined;
    if (!this.#renewing || !this.held) return;
    if (this.#extending) return;
    this.#extending = this.extend()
      .then(
        () => {
          if (!this.#renewOnce) return this.#nextRenewal();
          this.#renewing = false;
          return undefined;
        },
        (err: unknown) => {
          if (!this.held || !(err instanceof LockError)) return undefined;
          // Not lost yet: try again soon, while the lock is still valid.
          return Math.max(1, Math.min(this.#ttl / 10, this.remaining() / 4));
        },
      )
      .then((next) => {
        this.#extending = undefined;
        if (next !== undefined && this.#renewing && this.held) this.#scheduleRenewal(next);
      });
  }

  /** Arms the timer that declares the lock lost just before its validity deadline. */
  #armExpiry(): void {
    this.#cancelExpiry();
    // Timers fire late on a busy event loop: aim early enough that the signal
    // still aborts before the deadline; a lock handed over with little validity
    // left (it is extended at once) keeps most of it.
    const margin = Math.min(100, this.#ttl * 0.05, this.remaining() / 4);
    this.#cancelExpiry = this.#ctx.clock.setTimer(
      () =>
        this.#lose(
          new LockLostError(this.resources, 'its validity ran out before it was extended'),
        ),
      this.remaining() - margin,
      { keepAlive: false },
    );
  }

  #end(reason: LockLostError): void {
    this.#ended = reason;
    this.#controller?.abort(reason);
  }

  #stop(): void {
    this.#renewing = false;
    this.#cancelRenewal?.();
    this.#cancelRenewal = undefined;
    this.#cancelExpiry();
  }

  #lose(error: LockLostError): void {
    if (this.#ended) return;
    this.#stop();
    this.#end(error);
    this.#ctx.forget(this);
    publish('lost', () => ({ resources: this.resources, reason: error.message, error }));
    if (this.#onLost) {
      try {
        this.#onLost(error);
      } catch (err) {
        // A throwing callback must not crash the process from a timer.
        queueMicrotask(() => {
          process.emitWarning(`quorumlock onLost callback threw: ${String(err)}`);
        });
      }
    }
  }
}
