/** Types of postgres.mjs, for the TypeScript tests. */

/** A running PostgreSQL server of the harness. */
export interface PostgresServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  /** The temp dir holding the cluster and the server's socket. */
  readonly dir: string;
  /** The postmaster's pid (also its process group). */
  readonly pid: number;
  /** SIGSTOP to the postmaster and every backend. */
  pause(): void;
  /** SIGCONT to the postmaster and every backend. */
  resume(): void;
  /** SIGKILL to the postmaster and every backend; resolves once exited. */
  kill(): Promise<void>;
  /** Kills the server and starts it again on the same port with the same data. */
  restart(): Promise<void>;
  /** Runs SQL with psql as the superuser; resolves with its trimmed output. */
  sql(text: string): Promise<string>;
  /** Fast shutdown and removal of the data dir; safe to call twice. */
  stop(): Promise<void>;
}

/** Where Debian's PostgreSQL binaries live; throws with install advice when missing. */
export function postgresBin(): string;

/** Starts a fresh server on a free 127.0.0.1 port; `settings` become `-c name=value`. */
export function startPostgres(opts?: {
  settings?: Record<string, string | number>;
}): Promise<PostgresServer>;
