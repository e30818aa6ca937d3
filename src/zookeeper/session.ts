/**
 * The one ZooKeeper session of a provider: opened on first use, replaced by a
 * fresh one after it expires, and the place to wait for a connection within a
 * deadline. Ephemeral nodes live exactly as long as the session that made them.
 */
import type { Clock } from '../clock.js';
import { openZkClient, type ZkClient, ZkError } from './client.js';

/** How to reach the ensemble. */
export interface SessionOptions {
  /** `host:port,host:port`. */
  readonly hosts: string;
  /** The session timeout to ask for, ms. */
  readonly sessionTimeout: number;
  readonly clock: Clock;
}

/** The provider's session. */
export class ZkSession {
  readonly #options: SessionOptions;
  #client: ZkClient | undefined;
  #opening: Promise<ZkClient> | undefined;
  #closed = false;

  constructor(options: SessionOptions) {
    this.#options = options;
  }

  /** The current client, if one was opened and has not expired. */
  get current(): ZkClient | undefined {
    return this.#client;
  }

  /**
   * The connected client, opening a session when there is none (or the last
   * one expired); rejects with a ZkError when no server answers by `deadline`.
   */
  async connected(deadline: number, signal?: AbortSignal): Promise<ZkClient> {
    const client = await this.#live();
    await waitConnected(client, this.#options.clock, deadline, signal);
    return client;
  }

  /** Closes the session; its ephemeral nodes go at once. */
  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client ?? (await this.#opening?.catch(() => undefined));
    this.#client = undefined;
    await client?.close();
  }

  async #live(): Promise<ZkClient> {
    if (this.#closed) throw new ZkError('CLOSED', 'the ZooKeeper session was closed');
    const client = this.#client;
    if (client && client.state !== 'expired' && client.state !== 'closed') return client;
    this.#opening ??= openZkClient(this.#options).then(
      (fresh) => {
        this.#client = fresh;
        this.#opening = undefined;
        if (this.#closed) fresh.close().catch(() => {});
        return fresh;
      },
      (err: unknown) => {
        this.#opening = undefined;
        throw err;
      },
    );
    return this.#opening;
  }
}

/**
 * Resolves once `client` is connected; rejects with a ZkError when its session
 * ends or `deadline` passes first, or with the signal's reason.
 */
export function waitConnected(
  client: ZkClient,
  clock: Clock,
  deadline: number,
  signal?: AbortSignal,
): Promise<void> {
  if (client.state === 'connected') return Promise.resolve();
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: unknown) => {
      stop();
      cancel();
      signal?.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = () => settle(signal?.reason);
    const check = (state = client.state) => {
      if (state === 'connected') settle();
      else if (state === 'expired' || state === 'closed') {
        settle(
          new ZkError(
            'SESSION_EXPIRED',
            `the ZooKeeper session ${state === 'closed' ? 'was closed' : 'expired'}`,
          ),
        );
      }
    };
    const stop = client.onState(check);
    const timedOut = () =>
      settle(
        new ZkError(
          'CONNECTION_LOSS',
          `no ZooKeeper server of the ensemble could be reached in time (session ${client.state})`,
        ),
      );
    const cancel = Number.isFinite(deadline)
      ? clock.setTimer(timedOut, deadline - clock.now(), { keepAlive: false })
      : () => {};
    signal?.addEventListener('abort', onAbort, { once: true });
    check();
  });
}
