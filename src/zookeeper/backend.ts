/**
 * The ZooKeeper backend of the shared core: one try is the recipe over each
 * resource in sorted order (all or nothing, and no deadlock between two
 * multi-resource waiters); a hold is confirmed by reading its nodes back; a
 * release deletes them. The lost signal fires on the first disconnect, on
 * expiry, when our node is deleted, and when the confirmation deadline
 * (2/3 of the session timeout after the last confirmed request) passes:
 * always before the server can expire the session and let another client in.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { LockError, QuorumError } from '../errors.js';
import type { ExtendResult } from '../lock.js';
import type { NodeOutcome } from '../outcome.js';
import type { LockBackend, LockState, TryOutcome, TryRequest } from '../provider.js';
import { type ZkClient, ZkError } from './client.js';
import {
  enqueue,
  findProtected,
  isConnectionLoss,
  queueOrder,
  type TurnContext,
  waitTurn,
} from './recipe.js';
import { waitConnected, type ZkSession } from './session.js';

/** What `inspect` tells about a resource on ZooKeeper. */
export interface ZkLockState extends LockState {
  /** The holder's fence (the zxid that created its node), or null when free. */
  readonly fence: number | null;
  /** The holder's session id in hex, or null when free. */
  readonly session: string | null;
  /** Clients queued behind the holder. */
  readonly waiting: number;
}

/** One of a hold's lock nodes. */
interface HeldNode {
  readonly parent: string;
  /** Set once a create was sent: the node may exist even without a path. */
  started: boolean;
  path: string | undefined;
}

/** What a held lock keeps: its session, its nodes and how to report their loss. */
export interface ZkHold {
  readonly client: ZkClient;
  readonly guid: string;
  readonly nodes: readonly HeldNode[];
  /** Set once the try has handed the hold to the core: from then on, loss is reported. */
  armed: boolean;
  released: boolean;
  /** Stops listening to the session. */
  stop(): void;
}

/** Settings of the backend. */
export interface ZkBackendOptions {
  /** Label of the ensemble in outcomes and errors (its hosts). */
  readonly label: string;
  /** The base path: the URL's chroot, or `/quorumlock`. */
  readonly base: string;
  readonly fencing: boolean;
  readonly clock: Clock;
}

/** The path of a resource's queue: the name percent-encoded, so any string is one node. */
export function resourcePath(base: string, resource: string): string {
  return `${base === '/' ? '' : base}/${encodeURIComponent(resource).replace(/\./g, '%2E')}`;
}

/** The ZooKeeper implementation of the core's LockBackend. */
export class ZkBackend implements LockBackend<ZkHold, ZkLockState> {
  readonly alwaysConfirm = true;
  readonly #session: ZkSession;
  readonly #options: ZkBackendOptions;
  readonly #clock: Clock;

  constructor(session: ZkSession, options: ZkBackendOptions) {
    this.#session = session;
    this.#options = options;
    this.#clock = options.clock;
  }

  /** How long a try may wait for a connection beyond its own wait: short, so failures are prompt. */
  #grace(client?: ZkClient): number {
    return Math.min(1000, client?.sessionTimeout ?? 1000);
  }

  async try(request: TryRequest): Promise<TryOutcome<ZkHold>> {
    const clock = this.#clock;
    const until = clock.now() + request.wait;
    // Waiting for a connection is bounded by one session timeout per try (the
    // core gives up after a few failed tries), and never shorter than a grace.
    const connectBy = () => {
      const now = clock.now();
      const timeout = this.#session.current?.sessionTimeout ?? 1000;
      return Math.max(Math.min(until, now + timeout), now + this.#grace(this.#session.current));
    };
    const client = await this.#session
      .connected(connectBy(), request.signal)
      .catch((err: unknown) => this.#fail('acquire', err, request.signal));
    const hold: ZkHold = {
      client,
      guid: randomUUID(),
      nodes: [...request.resources].sort().map((r) => ({
        parent: resourcePath(this.#options.base, r),
        started: false,
        path: undefined,
      })),
      armed: false,
      released: false,
      stop: () => {},
    };
    const lose = (reason: string, cause?: unknown) => {
      if (hold.armed && !hold.released) request.lose(reason, cause);
    };
    const stopState = client.onState((state) => {
      if (state === 'connected') return;
      lose(
        state === 'suspended'
          ? 'the ZooKeeper connection was lost (suspended); the session may expire'
          : `the ZooKeeper session ${state === 'closed' ? 'was closed' : 'expired'}`,
      );
      // Nodes of a session that lives on must go once it is back.
      if (state === 'suspended' && hold.armed && !hold.released) {
        hold.released = true;
        stopState();
        this.#removeLater(hold);
      }
    });
    hold.stop = stopState;
    const ctx: TurnContext = {
      client,
      clock,
      until,
      signal: request.signal,
      reconnected: () => waitConnected(client, clock, connectBy(), request.signal),
    };
    const sorted = [...request.resources].sort();
    const fences: Record<string, number> = {};
    let sentAt = clock.now();
    try {
      for (const [i, resource] of sorted.entries()) {
        const node = hold.nodes[i]!;
        node.started = true;
        const queued = await enqueue(
          ctx,
          this.#options.base,
          node.parent,
          hold.guid,
          request.value,
        );
        node.path = queued.path;
        // A deletion is reported even before the hold is armed: the core
        // remembers it and gives back a hold that ends up acquired.
        const turn = await waitTurn(ctx, queued, () => {
          if (!hold.released) request.lose(`its lock node ${node.path} was deleted`);
        });
        if (!turn) {
          stopState();
          await this.#remove(hold);
          return { kind: 'taken', outcomes: [this.#outcome('taken')] };
        }
        sentAt = turn.sentAt;
        if (this.#options.fencing) fences[resource] = safeFence(turn.czxid);
      }
      if (client.state !== 'connected') {
        throw new ZkError('CONNECTION_LOSS', 'the connection was lost as the lock was taken');
      }
    } catch (err) {
      stopState();
      this.#removeLater(hold);
      return this.#fail('acquire', err, request.signal);
    }
    hold.armed = true;
    return {
      kind: 'acquired',
      handle: hold,
      fences,
      deadline: sentAt + (client.sessionTimeout * 2) / 3,
      outcomes: [this.#outcome('acquired')],
    };
  }

  async extend(hold: ZkHold, resources: readonly string[], _ttl: number): Promise<ExtendResult> {
    const { client } = hold;
    const sentAt = this.#clock.now();
    const gone = (reason: string, cause?: unknown): ExtendResult => ({
      deadline: undefined,
      gone: true,
      outcomes: [this.#outcome('taken')],
      error: new QuorumError('extend', 1, [this.#outcome('error', cause)], reason),
    });
    if (hold.released || client.state !== 'connected') {
      return gone(`the ZooKeeper session is ${client.state}`);
    }
    try {
      const stats = await Promise.all(hold.nodes.map((n) => client.stat(n.path!)));
      if (stats.some((s) => s === null || s.ephemeralOwner !== client.sessionId)) {
        return gone(`a lock node of ${resources.join(', ')} is gone`);
      }
    } catch (err) {
      if (isConnectionLoss(err)) {
        // Not proven gone: the Lock keeps its old deadline, and suspension reports the loss.
        return {
          deadline: undefined,
          gone: false,
          outcomes: [this.#outcome('error', err)],
          error: this.#error('extend', err),
        };
      }
      return gone(String((err as Error).message), err);
    }
    return {
      deadline: sentAt + (client.sessionTimeout * 2) / 3,
      gone: false,
      outcomes: [this.#outcome('acquired')],
    };
  }

  async release(hold: ZkHold, _resources: readonly string[]): Promise<readonly NodeOutcome[]> {
    if (hold.released) return [this.#outcome('released')];
    hold.released = true;
    hold.stop();
    await this.#remove(hold);
    return [this.#outcome('released')];
  }

  /** The hold was declared lost without a release: its nodes go now, or once the session is back. */
  drop(hold: ZkHold, _resources: readonly string[]): void {
    if (hold.released) return;
    hold.released = true;
    hold.stop();
    this.#removeLater(hold);
  }

  async inspect(resource: string): Promise<ZkLockState> {
    const parent = resourcePath(this.#options.base, resource);
    try {
      const client = await this.#session.connected(
        this.#clock.now() + this.#grace(this.#session.current),
      );
      for (;;) {
        const queue = queueOrder((await client.children(parent)) ?? []);
        if (queue.length === 0) {
          return { resource, holder: null, fence: null, session: null, waiting: 0 };
        }
        const got = await client.getData(`${parent}/${queue[0]}`);
        if (!got) continue;
        return {
          resource,
          holder: got.data.toString('utf8'),
          fence: safeFence(got.stat.czxid),
          session: got.stat.ephemeralOwner.toString(16),
          waiting: queue.length - 1,
        };
      }
    } catch (err) {
      throw this.#error('inspect', err);
    }
  }

  async close(): Promise<void> {
    await this.#session.close();
  }

  /** Deletes the hold's nodes now, or once the session is back; never throws. */
  async #remove(hold: ZkHold): Promise<void> {
    const { client } = hold;
    try {
      for (const node of hold.nodes) {
        if (!node.started) continue;
        node.path ??= await findProtected(client, node.parent, hold.guid);
        if (node.path === undefined) continue;
        await client.remove(node.path);
        node.path = undefined;
        node.started = false;
        if (!client.containers) {
          // No container nodes on this server: remove the empty parent ourselves.
          await client.remove(node.parent).catch(() => {});
        }
      }
    } catch (err) {
      if (isConnectionLoss(err)) this.#removeLater(hold);
    }
  }

  /**
   * Deletes the hold's nodes (found by guid where the create's reply was
   * lost) once its session is connected again; nothing to do once it expired.
   */
  #removeLater(hold: ZkHold): void {
    const { client } = hold;
    if (client.state === 'connected') {
      void this.#remove(hold);
      return;
    }
    const stop = client.onState((state) => {
      if (state === 'connected') {
        stop();
        void this.#remove(hold);
      } else if (state === 'expired' || state === 'closed') stop();
    });
  }

  #outcome(status: NodeOutcome['status'], cause?: unknown): NodeOutcome {
    return cause === undefined
      ? { node: this.#options.label, status }
      : { node: this.#options.label, status, cause };
  }

  /** The typed error a failed operation becomes (the driver's error as cause). */
  #error(operation: string, err: unknown): LockError {
    if (err instanceof LockError) return err;
    const detail = err instanceof Error ? err.message : String(err);
    return new QuorumError(
      operation,
      1,
      [this.#outcome('error', err)],
      `the ZooKeeper ensemble ${this.#options.label} did not serve it: ${detail}`,
    );
  }

  #fail(operation: string, err: unknown, signal: AbortSignal): never {
    if (signal.aborted) throw signal.reason;
    throw this.#error(operation, err);
  }
}

/** A zxid as a fence: a safe integer (epochs below 2^21, i.e. always in practice). */
function safeFence(zxid: bigint): number {
  if (zxid > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ZkError('FENCE_RANGE', `zxid 0x${zxid.toString(16)} is beyond 2^53`);
  }
  return Number(zxid);
}
