/**
 * The ZooKeeper lock recipe, as Apache Curator's InterProcessMutex does it:
 *
 * 1. Create an ephemeral sequential child `_c_<guid>-lock-<seq>` under the
 *    resource's node (a container, which the server deletes once empty).
 *    The guid makes the name "protected": when a create's reply is lost, the
 *    node is found again by its guid instead of being orphaned.
 * 2. List the children, ordered by sequence. Lowest holds the lock. Otherwise
 *    watch only the immediate predecessor (FIFO, and a release wakes exactly
 *    one waiter) and list again when it goes.
 * 3. Giving up (wait over, aborted) deletes our node, so nothing stays queued.
 *
 * The holder's fence is the zxid that created its node, read together with
 * the node's owner, which must be our own session (a node of an older,
 * expiring session is never adopted: CURATOR-604).
 */
import type { Clock } from '../clock.js';
import type { ZkClient } from './client.js';
import { ZkError } from './client.js';

/** What a try needs around the client: its bounds and how to wait out a disconnect. */
export interface TurnContext {
  readonly client: ZkClient;
  readonly clock: Clock;
  /** Monotonic deadline of waiting in the queue, ms. */
  readonly until: number;
  readonly signal: AbortSignal;
  /**
   * Resolves once the same session is connected again; rejects when it
   * cannot be within the try's bounds or the session is gone.
   */
  reconnected(): Promise<void>;
}

/** Our node in a queue, and the queue as listed just after the create (when it could be). */
export interface Queued {
  readonly path: string;
  /** The parent's children, read right behind the create in the same session's order. */
  readonly listed?: Promise<string[] | null>;
  /** When this call created the node: the zxid that did, and when the create was sent. */
  readonly created?: { readonly zxid: bigint; readonly sentAt: number };
}

/** Our turn came: the node we hold by, and the zxid that created it. */
export interface Turn {
  readonly path: string;
  readonly czxid: bigint;
  /** Monotonic time the request that found us first was sent: the session lived then. */
  readonly sentAt: number;
}

/** The name prefix of a try's lock nodes: Curator's protected-name form. */
export function protectedPrefix(guid: string): string {
  return `_c_${guid}-lock-`;
}

/** The sequence number of a lock node name (its last 10 digits); NaN for foreign names. */
export function sequenceOf(name: string): number {
  const match = /-lock-(-?\d{10})$/.exec(name);
  return match ? Number(match[1]) : Number.NaN;
}

/** Lock node names in queue order (foreign children are ignored). */
export function queueOrder(children: readonly string[]): string[] {
  return children
    .filter((c) => !Number.isNaN(sequenceOf(c)))
    .sort((a, b) => sequenceOf(a) - sequenceOf(b));
}

/** Errors after which the same session may still be there once reconnected. */
export function isConnectionLoss(err: unknown): boolean {
  return (
    err instanceof ZkError && (err.code === 'CONNECTION_LOSS' || err.code === 'OPERATION_TIMEOUT')
  );
}

/** Runs `step` again after each disconnect, as long as the same session comes back in time. */
export async function persist<T>(ctx: TurnContext, step: () => Promise<T>): Promise<T> {
  for (;;) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    try {
      return await step();
    } catch (err) {
      if (!isConnectionLoss(err)) throw err;
      await ctx.reconnected();
    }
  }
}

/** Creates the resource's parent (a container) and, when missing, the base path above it. */
export async function ensureParent(ctx: TurnContext, base: string, parent: string): Promise<void> {
  const { client } = ctx;
  try {
    await client.create(parent, Buffer.alloc(0), 'container');
  } catch (err) {
    if (err instanceof ZkError && err.code === 'NODE_EXISTS') return;
    if (!(err instanceof ZkError) || err.code !== 'NO_NODE') throw err;
    await ensurePath(client, base);
    await ensureParent(ctx, base, parent);
  }
}

/** Creates `path` and its ancestors as persistent nodes where missing. */
export async function ensurePath(client: ZkClient, path: string): Promise<void> {
  let at = '';
  for (const part of path.split('/').filter(Boolean)) {
    at += `/${part}`;
    try {
      await client.create(at, Buffer.alloc(0), 'persistent');
    } catch (err) {
      if (!(err instanceof ZkError) || err.code !== 'NODE_EXISTS') throw err;
    }
  }
}

/**
 * Joins the queue of `parent` with a protected ephemeral sequential node and
 * returns its full path. A create whose reply was lost is looked up by its
 * guid after the reconnect and adopted, never created twice. The queue is
 * listed in the same round trip: a session's requests are served in order,
 * so the listing sent right behind the create already sees our node.
 */
export async function enqueue(
  ctx: TurnContext,
  base: string,
  parent: string,
  guid: string,
  value: string,
): Promise<Queued> {
  const prefix = protectedPrefix(guid);
  let unsure = false;
  for (;;) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    try {
      if (unsure) {
        const found = await findProtected(ctx.client, parent, guid);
        if (found) return { path: found };
      }
      unsure = true;
      const sentAt = ctx.clock.now();
      const created = ctx.client.createEphemeralSequential(
        `${parent}/${prefix}`,
        Buffer.from(value),
      );
      const listed = ctx.client.children(parent);
      // When the create fails, so does the listing; only the create's error counts.
      listed.catch(() => {});
      const { path, zxid } = await created;
      return { path, listed, created: { zxid, sentAt } };
    } catch (err) {
      if (err instanceof ZkError && err.code === 'NO_NODE') {
        // The parent was missing or its container was just reaped: nothing was created.
        unsure = false;
        await persist(ctx, () => ensureParent(ctx, base, parent));
        continue;
      }
      if (!isConnectionLoss(err)) throw err;
      await ctx.reconnected();
    }
  }
}

/** Our node under `parent`, found by the try's guid; undefined when there is none. */
export async function findProtected(
  client: ZkClient,
  parent: string,
  guid: string,
): Promise<string | undefined> {
  const prefix = protectedPrefix(guid);
  const name = (await client.children(parent))?.find((c) => c.startsWith(prefix));
  return name === undefined ? undefined : `${parent}/${name}`;
}

/**
 * Waits until `path` is first in its queue, watching only its predecessor.
 * Resolves with our Turn, or with undefined when `until` passes first (the
 * caller then deletes the node). Rejects if our node vanished (the session
 * that owned it expired) or does not belong to our session. `onDeleted` is
 * called if our node is deleted after our turn came.
 */
export async function waitTurn(
  ctx: TurnContext,
  queued: Queued,
  onDeleted: () => void,
): Promise<Turn | undefined> {
  const { client } = ctx;
  const { path } = queued;
  const parent = path.slice(0, path.lastIndexOf('/'));
  const ours = path.slice(parent.length + 1);
  const readOwn = () => {
    const sentAt = ctx.clock.now();
    // The same read arms the watch that reports our node's deletion while held.
    const read = client.getData(path, (event) => {
      if (event === 'deleted') onDeleted();
    });
    return read.then((got) => ({ got, sentAt }));
  };
  let listed = queued.listed?.catch(() => undefined);
  let own: ReturnType<typeof readOwn> | undefined;
  // The create's own answer stands only for the listing that came with it.
  let created = queued.created;
  for (;;) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const children = (await listed) ?? (await persist(ctx, () => client.children(parent)));
    const ownRead = own;
    const justCreated = created;
    listed = undefined;
    own = undefined;
    created = undefined;
    const queue = queueOrder(children ?? []);
    const index = queue.indexOf(ours);
    if (index < 0) {
      throw new ZkError('NO_NODE', `lock node ${path} is gone: its session expired`);
    }
    if (index === 0 && justCreated) {
      // First in the queue we just joined: the create's reply told the zxid,
      // and a node this session created is this session's. The deletion watch
      // is armed right behind, and reports a node that is already gone.
      client
        .getData(path, (event) => {
          if (event === 'deleted') onDeleted();
        })
        .then(
          (got) => {
            if (got === null) onDeleted();
          },
          () => {},
        );
      return { path, czxid: justCreated.zxid, sentAt: justCreated.sentAt };
    }
    if (index === 0) {
      const { got, sentAt } =
        (await ownRead?.catch(() => undefined)) ?? (await persist(ctx, readOwn));
      if (!got) throw new ZkError('NO_NODE', `lock node ${path} is gone: its session expired`);
      if (got.stat.ephemeralOwner !== client.sessionId) {
        throw new ZkError('BAD_OWNER', `lock node ${path} belongs to another session`);
      }
      return { path, czxid: got.stat.czxid, sentAt };
    }
    if (ctx.clock.now() >= ctx.until) return undefined;
    const predecessor = `${parent}/${queue[index - 1]}`;
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
    });
    // getData, not exists: a missing predecessor must not leave a watch behind.
    const present = await persist(ctx, () => client.getData(predecessor, () => wake()));
    if (!present) continue;
    await sleepUntil(ctx, woken);
    // Woken: list the queue and read our own node in one round trip.
    listed = client.children(parent).catch(() => undefined);
    own = readOwn();
    own.catch(() => {});
  }
}

/** Waits for `woken`, a change of session state, `until` or the signal, whichever is first. */
async function sleepUntil(ctx: TurnContext, woken: Promise<void>): Promise<void> {
  let cancelTimer: () => void = () => {};
  let stopState: () => void = () => {};
  let onAbort: () => void = () => {};
  try {
    await Promise.race([
      woken,
      new Promise<void>((resolve) => {
        if (Number.isFinite(ctx.until)) {
          cancelTimer = ctx.clock.setTimer(resolve, ctx.until - ctx.clock.now());
        }
        stopState = ctx.client.onState(() => resolve());
        onAbort = resolve;
        // An abort that came while a request was out is seen here, not missed.
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    cancelTimer();
    stopState();
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
