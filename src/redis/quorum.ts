/**
 * The coordinator: send one operation to every node in parallel, each call
 * with its own deadline, and decide as soon as the outcome is certain: either
 * `quorum` nodes said yes, or so many said no, failed or timed out that a
 * quorum can no longer be reached. Every split of every N terminates, because
 * every call ends by its deadline at the latest.
 */
import type { Clock } from '../clock.js';
import type { NodeOutcome, NodeStatus } from '../outcome.js';
import type { LockNode } from './node.js';

export type { NodeOutcome, NodeStatus };

/** How one node's reply counts. */
export interface Verdict {
  readonly yes: boolean;
  readonly status: NodeStatus;
  readonly holderTtl?: number;
}

/** A decided round. */
export interface Round<T> {
  /** True when `quorum` nodes said yes. */
  readonly ok: boolean;
  /** Monotonic time the round started, ms. */
  readonly startedAt: number;
  /** Per-node outcomes at the moment of decision (undecided nodes are `pending`). */
  readonly outcomes: readonly NodeOutcome[];
  /** Replies of the nodes that said yes by the decision, by node index. */
  readonly replies: ReadonlyMap<number, T>;
  /** Resolves with every node's final outcome and reply once all calls have ended. */
  readonly settled: Promise<{ outcomes: readonly NodeOutcome[]; replies: ReadonlyMap<number, T> }>;
}

/** Error used to abandon a call whose deadline passed. */
export class NodeTimeoutError extends Error {
  override name = 'NodeTimeoutError';
}

export interface FanOutOptions<T> {
  readonly nodes: readonly LockNode[];
  readonly quorum: number;
  /** Per-call deadline in ms. */
  readonly timeout: number;
  readonly clock: Clock;
  /** Sends the operation to `node`, the `index`-th of `nodes`. */
  readonly call: (node: LockNode, signal: AbortSignal, index: number) => Promise<T>;
  /** How node `index`'s reply counts. */
  readonly judge: (reply: T, index: number) => Verdict;
}

/**
 * Runs one operation on every node and decides at quorum. Never rejects. All
 * calls of a round share one deadline, one timer and one abort signal.
 */
export function fanOut<T>(opts: FanOutOptions<T>): Promise<Round<T>> {
  const { nodes, quorum, timeout, clock, judge } = opts;
  const startedAt = clock.now();
  const outcomes: NodeOutcome[] = nodes.map((n) => ({ node: n.id, status: 'pending' }));
  const finished: boolean[] = nodes.map(() => false);
  const replies = new Map<number, T>();
  const controller = new AbortController();
  let yes = 0;
  let no = 0;
  let remaining = nodes.length;
  let decided = false;
  let decide!: (round: Round<T>) => void;
  let finishSettled!: () => void;
  const settled = new Promise<{
    outcomes: readonly NodeOutcome[];
    replies: ReadonlyMap<number, T>;
  }>((resolve) => {
    finishSettled = () => resolve({ outcomes, replies });
  });
  const decision = new Promise<Round<T>>((resolve) => {
    decide = resolve;
  });

  const record = (i: number, outcome: NodeOutcome, isYes: boolean) => {
    finished[i] = true;
    outcomes[i] = outcome;
    if (isYes) yes++;
    else no++;
    remaining--;
    if (!decided && (yes >= quorum || no > nodes.length - quorum)) {
      decided = true;
      decide({
        ok: yes >= quorum,
        startedAt,
        outcomes: [...outcomes],
        replies: new Map(replies),
        settled,
      });
    }
    if (remaining === 0) {
      cancelTimer();
      finishSettled();
    }
  };
  const fail = (i: number, status: 'error' | 'timeout', cause: unknown) =>
    record(i, { node: nodes[i]!.id, status, latencyMs: clock.now() - startedAt, cause }, false);

  const expire = () => {
    controller.abort(new NodeTimeoutError(`no answer within ${timeout} ms`));
    for (let i = 0; i < nodes.length; i++) {
      if (!finished[i])
        fail(
          i,
          'timeout',
          new NodeTimeoutError(`${nodes[i]!.id} did not answer within ${timeout} ms`),
        );
    }
  };
  // When the deadline passes, first let replies that already arrived (say,
  // while this process's event loop was stalled) be read, then time out the rest.
  let cancelTimer = clock.setTimer(() => {
    cancelTimer = clock.setTimer(expire, 0);
  }, timeout);

  nodes.forEach((node, i) => {
    let call: Promise<T>;
    try {
      call = opts.call(node, controller.signal, i);
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      (reply) => {
        if (finished[i]) return;
        let verdict: Verdict;
        try {
          verdict = judge(reply, i);
        } catch (err) {
          fail(i, 'error', err);
          return;
        }
        if (verdict.yes) replies.set(i, reply);
        record(
          i,
          {
            node: node.id,
            status: verdict.status,
            latencyMs: clock.now() - startedAt,
            ...(verdict.holderTtl === undefined ? {} : { holderTtl: verdict.holderTtl }),
          },
          verdict.yes,
        );
      },
      (err: unknown) => {
        if (!finished[i]) fail(i, 'error', err);
      },
    );
  });
  if (nodes.length === 0) {
    cancelTimer();
    decided = true;
    decide({ ok: quorum <= 0, startedAt, outcomes, replies, settled });
    finishSettled();
  }
  return decision;
}

/** True when a failed round failed for lack of reachable nodes rather than because the lock is taken. */
export function isInfrastructureFailure(outcomes: readonly NodeOutcome[], quorum: number): boolean {
  const failed = outcomes.filter((o) => o.status === 'error' || o.status === 'timeout').length;
  return failed > outcomes.length - quorum;
}

/**
 * How long until another holder's key has expired on enough nodes for a
 * quorum to be free: the (N − quorum + 1)-th largest holder ttl reported.
 * `undefined` when too few nodes reported a holder to say.
 */
export function holderTtlOnQuorum(
  outcomes: readonly NodeOutcome[],
  quorum: number,
): number | undefined {
  const ttls = outcomes
    .map((o) => o.holderTtl)
    .filter((t): t is number => t !== undefined && t >= 0)
    .sort((a, b) => b - a);
  return ttls[outcomes.length - quorum];
}
