/** Types of postgres.mjs, for the TypeScript tests. */
import type { DatabaseServer } from './processes.mjs';

/** A running PostgreSQL server; `url` is `postgres://postgres@127.0.0.1:<port>/postgres`. */
export type PostgresServer = DatabaseServer;

/** Where Debian's PostgreSQL binaries live; throws with install advice when missing. */
export function postgresBin(): string;

/** Starts a fresh server on a free 127.0.0.1 port; `settings` become `-c name=value`. */
export function startPostgres(opts?: {
  settings?: Record<string, string | number>;
}): Promise<PostgresServer>;
