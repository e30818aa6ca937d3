/**
 * What the SQL backends share: session locks held on dedicated sessions,
 * probed in the background, with fencing tokens from a counter row. A
 * dialect (PostgreSQL, MySQL) says only which statements to send.
 *
 * Each held lock pins one session of the provider's own; released locks give
 * their session back for the next acquisition. Locks are therefore never
 * reentrant: a resource this provider holds is held by another session, and
 * the server refuses it exactly as it would refuse another process.
 */
import { type Clock, systemClock } from '../clock.js';
import {
  ClosedError,
  InvalidArgumentError,
  LockError,
  LockLostError,
  QuorumError,
} from '../errors.js';
import type { ExtendResult } from '../lock.js';
import { type Settings, show } from '../options.js';
import type { NodeOutcome, NodeStatus } from '../outcome.js';
import {
  type LockBackend,
  type LockState,
  resolveProviderOptions,
  type TryOutcome,
  type TryRequest,
} from '../provider.js';
import { lockKey } from './keys.js';
import type { SqlConnection, SqlSession } from './session.js';
import { SqlSession as Session } from './session.js';

/** What `inspect` tells about a resource on a SQL backend. */
export interface SqlLockState extends LockState {
  /** The holder's lock value as its fence row records it, else `session <id>`; null when free. */
  readonly holder: string | null;
  /** The server's id of the holding session (PostgreSQL backend pid, MySQL connection id), or null. */
  readonly session: string | null;
  /** The last fencing token issued for this resource, or null when none was. */
  readonly fence: number | null;
}

/** The statements of one SQL dialect. Every method runs on the session it is given. */
export interface SqlDialect {
  /** `PostgreSQL` or `MySQL`. */
  readonly label: string;
  /** Opens one dedicated connection (rejects with MissingDriverError when the driver is absent). */
  open(url: string, connectTimeoutMs: number): Promise<SqlConnection>;
  /** Tries to take every key without waiting; true per key it took. */
  tryLock(s: SqlSession, keys: readonly bigint[], timeoutMs: number): Promise<boolean[]>;
  /**
   * Waits up to `waitMs` in the server's queue for every key, in order; true
   * per key (all false when the wait timed out or was cancelled: keys taken
   * meanwhile are released). `timeoutMs` is the deadline beyond the wait.
   */
  waitLock(
    s: SqlSession,
    keys: readonly bigint[],
    waitMs: number,
    timeoutMs: number,
  ): Promise<boolean[]>;
  /** Cancels the statement that session `id` runs (its lock wait), from session `s`. */
  cancel(s: SqlSession, id: string, timeoutMs: number): Promise<void>;
  /** Releases keys this session holds. */
  unlock(s: SqlSession, keys: readonly bigint[], timeoutMs: number): Promise<void>;
  /** Bumps the counter row of every key, recording `holder`; the new token per key. */
  bumpFences(
    s: SqlSession,
    table: string,
    keys: readonly bigint[],
    holder: string,
    timeoutMs: number,
  ): Promise<number[]>;
  /** The statement that creates the fence table (the library runs it on first use; users without DDL rights run it once). */
  fenceTableSql(table: string): string;
  /** True for the driver's "no such table" error. */
  isMissingTable(err: unknown): boolean;
  /** Who holds `key`: the holding session's id, and the fence row. */
  holder(
    s: SqlSession,
    table: string,
    key: bigint,
    timeoutMs: number,
  ): Promise<{ session: string | null; fence: number | null; value: string | null }>;
}

/** Options of the SQL providers beyond the core's (`ttl`, `retry`, `fencing`, `renew`). */
export interface SqlOptions {
  /** Table of fence counters, created on first use. Default `quorumlock_fence`. */
  readonly fenceTable?: string;
  /** Milliseconds to wait for a new session to connect. Default 5000. */
  readonly connectTimeout?: number;
  /** Deadline of each statement (not of the background probe, whose deadline is the ttl), ms. Default 5000. */
  readonly queryTimeout?: number;
  /** Released sessions kept open for the next acquisitions. Default 4. */
  readonly maxIdle?: number;
}

/**
 * Longest single wait in the server's queue; a longer `wait` queues again
 * (a waiter whose session died meanwhile is dropped by then).
 */
const WAIT_CHUNK_MS = 10_000;

/** Option names of SqlOptions. */
export const SQL_OPTION_KEYS = ['fenceTable', 'connectTimeout', 'queryTimeout', 'maxIdle'];

interface ResolvedSqlOptions {
  readonly fenceTable: string;
  readonly connectTimeout: number;
  readonly queryTimeout: number;
  readonly maxIdle: number;
}

/** A hold: the session pinned to it and the keys it holds there. */
export interface SqlHold {
  readonly session: SqlSession;
  readonly keys: readonly bigint[];
  /** Stops turning the session's end into a lost signal. */
  readonly unwatch: () => void;
}

/** Validates the options a SQL provider takes beyond the core's. */
export function resolveSqlOptions(rest: Record<string, unknown>): ResolvedSqlOptions {
  const table = rest.fenceTable ?? 'quorumlock_fence';
  if (
    typeof table !== 'string' ||
    !/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/.test(table)
  ) {
    throw new InvalidArgumentError(
      `options.fenceTable must be a table name (letters, digits, _; optionally schema.table), got ${show(rest.fenceTable)}`,
    );
  }
  const ms = (name: string, fallback: number): number => {
    const value = rest[name] ?? fallback;
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value <= 0 ||
      value > 2_147_483_647
    ) {
      throw new InvalidArgumentError(
        `options.${name} must be a number of ms > 0, got ${show(rest[name])}`,
      );
    }
    return value;
  };
  const maxIdle = rest.maxIdle ?? 4;
  if (!Number.isInteger(maxIdle) || (maxIdle as number) < 0) {
    throw new InvalidArgumentError(
      `options.maxIdle must be an integer ≥ 0, got ${show(rest.maxIdle)}`,
    );
  }
  return {
    fenceTable: table,
    connectTimeout: ms('connectTimeout', 5000),
    queryTimeout: ms('queryTimeout', 5000),
    maxIdle: maxIdle as number,
  };
}

/** Validates a database URL of one of `protocols`; returns its host:port label. */
export function checkSqlUrl(
  url: unknown,
  protocols: readonly string[],
  defaultPort: number,
): string {
  if (typeof url !== 'string') {
    throw new InvalidArgumentError(`the database URL must be a string, got ${show(url)}`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(
      `not a valid URL: ${JSON.stringify(url.replace(/\/\/[^@/]*@/, '//***@'))}`,
    );
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new InvalidArgumentError(
      `the URL must use ${protocols.map((p) => `${p}//`).join(' or ')}, got ${JSON.stringify(parsed.protocol)}`,
    );
  }
  if (!parsed.hostname) throw new InvalidArgumentError('the database URL has no host');
  return `${parsed.hostname}:${parsed.port || defaultPort}`;
}

/**
 * The backend and settings of a SQL provider: the URL and every option are
 * validated here, before any I/O.
 */
export function sqlBackend(
  dialect: SqlDialect,
  url: string,
  protocols: readonly string[],
  defaultPort: number,
  options: unknown,
  clock?: Clock,
): { backend: SqlBackend; settings: Settings } {
  const label = checkSqlUrl(url, protocols, defaultPort);
  const { settings, rest } = resolveProviderOptions(options, SQL_OPTION_KEYS);
  const backend = new SqlBackend(dialect, url, label, settings, resolveSqlOptions(rest), clock);
  return { backend, settings };
}

/** The keys of `resources`, in the one order every holder takes them in (ascending, no repeats). */
function keysOf(resources: readonly string[]): bigint[] {
  const keys = [...new Set(resources.map(lockKey))];
  return keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Session locks of one SQL server behind the core's LockBackend. */
export class SqlBackend implements LockBackend<SqlHold, SqlLockState> {
  readonly alwaysConfirm = true;
  readonly #dialect: SqlDialect;
  readonly #url: string;
  readonly #label: string;
  readonly #settings: Settings;
  readonly #options: ResolvedSqlOptions;
  readonly #clock: Clock;
  readonly #idle: SqlSession[] = [];
  readonly #open = new Set<SqlSession>();
  #tableReady = false;
  #closed = false;

  constructor(
    dialect: SqlDialect,
    url: string,
    label: string,
    settings: Settings,
    options: ResolvedSqlOptions,
    clock: Clock = systemClock,
  ) {
    this.#dialect = dialect;
    this.#url = url;
    this.#label = label;
    this.#settings = settings;
    this.#options = options;
    this.#clock = clock;
  }

  async try(request: TryRequest): Promise<TryOutcome<SqlHold>> {
    const keys = keysOf(request.resources);
    const timeout = Math.min(this.#options.queryTimeout, request.ttl);
    const session = await this.#take('acquire');
    const startedAt = this.#clock.now();
    // A statement answered proves the session alive up to its answer, so from
    // its start at the latest: the session is confirmed from this moment.
    let confirmedAt = startedAt;
    const wait = Math.min(request.wait, WAIT_CHUNK_MS);
    try {
      const got =
        wait > 0
          ? await this.#waitLock(session, keys, wait, timeout, request.signal)
          : await this.#dialect.tryLock(session, keys, timeout);
      if (!got.every(Boolean)) {
        const taken = keys.filter((_, i) => got[i]);
        if (taken.length > 0) await this.#dialect.unlock(session, taken, timeout);
        this.#give(session);
        return { kind: 'taken', outcomes: [this.#outcome('taken', startedAt)] };
      }
      // Held from here on: the session's end is the lock's loss.
      const unwatch = session.onEnd((cause) =>
        request.lose(`its ${this.#dialect.label} session ended`, cause),
      );
      // After a wait, the next statement's start is the first moment known to be held.
      if (wait > 0) confirmedAt = this.#clock.now();
      let fences: Record<string, number> = {};
      if (this.#settings.fencing) {
        const tokens = await this.#bump(session, keys, request.value, timeout);
        const byKey = new Map(keys.map((k, i) => [k, tokens[i]!]));
        fences = Object.fromEntries(request.resources.map((r) => [r, byKey.get(lockKey(r))!]));
      } else if (wait > 0) {
        await session.query('SELECT 1', [], timeout);
      }
      return {
        kind: 'acquired',
        handle: { session, keys, unwatch },
        fences,
        deadline: confirmedAt + request.ttl,
        outcomes: [this.#outcome('acquired', startedAt)],
      };
    } catch (err) {
      // Whatever the session took is released by the server when it goes.
      session.destroy(err);
      if (err instanceof LockError) throw err;
      throw this.#failure('acquire', err);
    }
  }

  async extend(hold: SqlHold, resources: readonly string[], ttl: number): Promise<ExtendResult> {
    const startedAt = this.#clock.now();
    try {
      await hold.session.query('SELECT 1', [], ttl);
      return {
        deadline: startedAt + ttl,
        gone: false,
        outcomes: [this.#outcome('acquired', startedAt)],
      };
    } catch (err) {
      hold.session.destroy(err);
      return {
        deadline: undefined,
        gone: true,
        outcomes: [this.#outcome('error', startedAt, err)],
        error: new LockLostError(
          resources,
          `its ${this.#dialect.label} session did not answer the probe`,
          err,
        ),
      };
    }
  }

  async release(hold: SqlHold): Promise<readonly NodeOutcome[]> {
    const startedAt = this.#clock.now();
    hold.unwatch();
    const { session } = hold;
    if (session.alive) {
      try {
        await this.#dialect.unlock(session, hold.keys, this.#options.queryTimeout);
        this.#give(session);
      } catch (err) {
        // Closing the session releases its locks on the server.
        session.destroy(err);
      }
    }
    return [this.#outcome('released', startedAt)];
  }

  /** A lost hold: drop its session so the server frees whatever it may still hold. */
  drop(hold: SqlHold): void {
    hold.unwatch();
    hold.session.destroy();
  }

  async inspect(resource: string): Promise<SqlLockState> {
    const session = await this.#take('inspect');
    try {
      const found = await this.#dialect.holder(
        session,
        this.#options.fenceTable,
        lockKey(resource),
        this.#options.queryTimeout,
      );
      this.#give(session);
      const held = found.session !== null;
      return {
        resource,
        holder: held ? (found.value ?? `session ${found.session}`) : null,
        session: found.session,
        fence: found.fence,
      };
    } catch (err) {
      session.destroy(err);
      throw this.#failure('inspect', err);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#open].map((s) => s.end(1000)));
  }

  /** An idle session, or a new one. */
  async #take(operation: string): Promise<SqlSession> {
    if (this.#closed) throw new ClosedError();
    for (let s = this.#idle.pop(); s; s = this.#idle.pop()) if (s.alive) return s;
    let conn: SqlConnection;
    try {
      conn = await this.#dialect.open(this.#url, this.#options.connectTimeout);
    } catch (err) {
      if (err instanceof LockError) throw err;
      throw this.#failure(operation, err);
    }
    const session = new Session(conn);
    this.#open.add(session);
    session.onEnd(() => this.#open.delete(session));
    if (this.#closed) {
      session.destroy();
      throw new ClosedError();
    }
    return session;
  }

  /** Keeps a session that holds nothing for the next acquisition, or ends it. */
  #give(session: SqlSession): void {
    if (!session.alive) return;
    if (this.#closed || this.#idle.length >= this.#options.maxIdle) {
      void session.end(1000);
      return;
    }
    this.#idle.push(session);
  }

  /**
   * Waits up to `waitMs` in the server's own queue for every key, in the one
   * ascending order (so two waiters never deadlock). An abort cancels the
   * waiting statement from another session, so nothing stays queued.
   */
  async #waitLock(
    session: SqlSession,
    keys: readonly bigint[],
    waitMs: number,
    timeout: number,
    signal: AbortSignal,
  ): Promise<boolean[]> {
    const cancel = () => {
      void (async () => {
        const other = await this.#take('cancel');
        try {
          await this.#dialect.cancel(other, session.id, timeout);
          this.#give(other);
        } catch (err) {
          other.destroy(err);
        }
      })().catch(() => {
        // Could not reach the server to cancel: drop the waiting session instead.
        session.destroy();
      });
    };
    signal.addEventListener('abort', cancel, { once: true });
    try {
      return await this.#dialect.waitLock(session, keys, waitMs, timeout);
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }

  /** Bumps the fence rows, creating the table on first use. */
  async #bump(
    session: SqlSession,
    keys: readonly bigint[],
    value: string,
    timeout: number,
  ): Promise<number[]> {
    const table = this.#options.fenceTable;
    const bump = () => this.#dialect.bumpFences(session, table, keys, value, timeout);
    if (this.#tableReady) return bump();
    try {
      const tokens = await bump();
      this.#tableReady = true;
      return tokens;
    } catch (err) {
      if (!this.#dialect.isMissingTable(err)) throw err;
    }
    try {
      await session.query(this.#dialect.fenceTableSql(table), [], timeout);
    } catch (createError) {
      // Another provider may have created it meanwhile; if not, say what to do.
      try {
        return await bump();
      } catch {
        throw new QuorumError(
          'acquire',
          1,
          [this.#outcome('error', this.#clock.now(), createError)],
          `the fence table ${table} does not exist and this role cannot create it (${message(createError)}); create it with the migration in the docs, or set fencing: false`,
        );
      }
    }
    const tokens = await bump();
    this.#tableReady = true;
    return tokens;
  }

  #outcome(status: NodeStatus, startedAt: number, cause?: unknown): NodeOutcome {
    return {
      node: this.#label,
      status,
      latencyMs: this.#clock.now() - startedAt,
      ...(cause === undefined ? {} : { cause }),
    };
  }

  /** The typed error of a server that could not be reached or failed; the driver's error is its cause. */
  #failure(operation: string, cause: unknown): QuorumError {
    return new QuorumError(
      operation,
      1,
      [this.#outcome('error', this.#clock.now(), cause)],
      `the ${this.#dialect.label} server ${this.#label} could not be reached or failed (${message(cause)}); check that it is up and reachable`,
    );
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
