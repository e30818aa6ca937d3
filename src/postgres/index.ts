/**
 * quorumlock/postgres: locks as PostgreSQL session advisory locks, each held
 * on a dedicated session of the provider's own, probed in the background,
 * with fencing tokens from a counter row. Needs the `pg` package.
 */
import type { Clock } from '../clock.js';
import { BackendProvider, type ProviderOptions } from '../provider.js';
import { type SqlHold, type SqlLockState, type SqlOptions, sqlBackend } from '../sql/backend.js';
import { loadPg, postgresDialect } from './dialect.js';

export type { SqlLockState, SqlOptions } from '../sql/backend.js';
export { lockKey } from '../sql/keys.js';

/** Options of PostgresLocks; durations are milliseconds. */
export interface PostgresOptions extends ProviderOptions, SqlOptions {}

/**
 * PostgreSQL advisory locks behind the LockProvider contract. Point it at the
 * server itself or at a session-mode pooler, never at a transaction-mode one
 * (PgBouncer `pool_mode = transaction`): session locks need their session.
 */
export class PostgresLocks extends BackendProvider<SqlHold, SqlLockState> {
  /**
   * @param url `postgres://user:password@host:port/database` (or `postgresql://`)
   * @param options see PostgresOptions; `ttl` bounds how long a holder may go
   *   without confirming its session.
   */
  constructor(url: string, options?: PostgresOptions, clock?: Clock) {
    const { backend, settings } = sqlBackend(
      postgresDialect,
      url,
      ['postgres:', 'postgresql:'],
      5432,
      options,
      clock,
    );
    super(backend, settings, clock);
  }
}

/**
 * The entry point `connect()` uses for postgres:// URLs; rejects with
 * MissingDriverError at once when the driver is not installed.
 */
export async function openProvider(
  urls: readonly string[],
  options?: object,
): Promise<PostgresLocks> {
  const provider = new PostgresLocks(urls[0]!, options as PostgresOptions);
  await loadPg();
  return provider;
}
