/**
 * A dedicated database session: one connection of our own (never a pooled
 * one), whose end we learn at once, and whose every query has a deadline. A
 * session lock lives exactly as long as its session, so a session that ends,
 * fails or stops answering is a lock that is lost.
 */
import { MissingDriverError } from '../errors.js';

/**
 * Loads a driver package once, on first use; rejects with a
 * MissingDriverError naming the package when it is not installed.
 */
export function driverLoader<T>(
  packageName: string,
  backend: string,
  load: () => Promise<unknown>,
): () => Promise<T> {
  let driver: Promise<T> | undefined;
  return () => {
    driver ??= load().then(
      // A CommonJS driver comes as the default export of its module.
      (m) => ((m as { default?: T }).default ?? m) as T,
      (err: unknown) => {
        driver = undefined;
        throw new MissingDriverError(packageName, backend, err);
      },
    );
    return driver;
  };
}

/** The one-shot "connection closed" notice a dialect gives its SqlConnection. */
export class CloseNotice {
  #closed: { cause: unknown } | undefined;
  readonly #listeners: Array<(cause: unknown) => void> = [];

  /** The driver reported the connection's end (with its error, if any); later reports are ignored. */
  fire(cause: unknown): void {
    if (this.#closed) return;
    this.#closed = { cause };
    for (const listener of this.#listeners) listener(cause);
  }

  /** Calls `listener` once the connection has closed (at once if it has). */
  onClose(listener: (cause: unknown) => void): void {
    if (this.#closed) listener(this.#closed.cause);
    else this.#listeners.push(listener);
  }
}

/** One database connection as a dialect opens it. */
export interface SqlConnection {
  /** The server's id of this session (PostgreSQL backend pid, MySQL connection id). */
  readonly id: string;
  /** Runs one statement; resolves with its rows (or the driver's result for writes). */
  query(text: string, params: readonly unknown[]): Promise<SqlResult>;
  /** Calls `listener` once when the connection ends or fails, with the driver's error if any. */
  onClose(listener: (cause: unknown) => void): void;
  /** Ends the connection politely. */
  end(): Promise<void>;
  /** Drops the connection at once (the server ends the session when it sees the socket close). */
  destroy(): void;
}

/** Rows of a query, plus what a write reports. */
export interface SqlResult {
  readonly rows: readonly Record<string, unknown>[];
  /** MySQL: the statement's LAST_INSERT_ID. */
  readonly insertId?: number;
}

/** A query did not answer in time; the session was dropped. */
export class SessionTimeoutError extends Error {
  constructor(ms: number) {
    super(`the database did not answer within ${ms} ms`);
    this.name = 'SessionTimeoutError';
  }
}

/** A dedicated session: a connection, whether it is still alive, and why it ended. */
export class SqlSession {
  readonly #conn: SqlConnection;
  #ended: { cause: unknown } | undefined;
  readonly #listeners = new Set<(cause: unknown) => void>();

  constructor(conn: SqlConnection) {
    this.#conn = conn;
    conn.onClose((cause) => this.#close(cause));
  }

  /** The server's id of this session. */
  get id(): string {
    return this.#conn.id;
  }

  /** True until the connection ends or fails. */
  get alive(): boolean {
    return this.#ended === undefined;
  }

  /** Why the session ended (the driver's error, or undefined for a clean end). */
  get cause(): unknown {
    return this.#ended?.cause;
  }

  /**
   * Runs one statement with a deadline of `timeoutMs`; when it passes the
   * session is dropped (a late answer cannot be trusted to keep any order).
   */
  async query(text: string, params: readonly unknown[], timeoutMs: number): Promise<SqlResult> {
    if (this.#ended) throw this.#ended.cause ?? new Error('the database session has ended');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new SessionTimeoutError(timeoutMs);
        this.#close(error);
        this.#conn.destroy();
        reject(error);
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.#conn.query(text, params), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Calls `listener` when the session ends; the returned function stops listening. */
  onEnd(listener: (cause: unknown) => void): () => void {
    if (this.#ended) {
      const cause = this.#ended.cause;
      queueMicrotask(() => listener(cause));
      return () => {};
    }
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Ends the session politely (waits at most `timeoutMs`, then drops it). */
  async end(timeoutMs: number): Promise<void> {
    if (this.#ended) return;
    this.#close(undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#conn.end().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.#conn.destroy();
  }

  /** Drops the session at once: the server releases its locks when it sees the socket close. */
  destroy(cause?: unknown): void {
    this.#close(cause);
    this.#conn.destroy();
  }

  #close(cause: unknown): void {
    if (this.#ended) return;
    this.#ended = { cause };
    for (const listener of [...this.#listeners]) listener(cause);
    this.#listeners.clear();
  }
}
