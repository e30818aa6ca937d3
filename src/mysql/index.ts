/**
 * quorumlock/mysql: locks as MySQL / MariaDB user locks (GET_LOCK), each held
 * on a dedicated session of the provider's own, probed in the background,
 * with fencing tokens from a counter row. Needs the `mysql2` package.
 */
import type { Clock } from '../clock.js';
import { BackendProvider, type ProviderOptions } from '../provider.js';
import { type SqlHold, type SqlLockState, type SqlOptions, sqlBackend } from '../sql/backend.js';
import { loadMySql2, mysqlDialect } from './dialect.js';

export type { SqlLockState, SqlOptions } from '../sql/backend.js';
export { lockKey, lockName } from '../sql/keys.js';

/** Options of MySqlLocks; durations are milliseconds. */
export interface MySqlOptions extends ProviderOptions, SqlOptions {}

/**
 * MySQL / MariaDB user locks behind the LockProvider contract. Point it at
 * one primary (user locks are not replicated: not at several Galera nodes,
 * nor through a proxy that multiplexes sessions).
 */
export class MySqlLocks extends BackendProvider<SqlHold, SqlLockState> {
  /**
   * @param url `mysql://user:password@host:port/database` (or `mariadb://`)
   * @param options see MySqlOptions; `ttl` bounds how long a holder may go
   *   without confirming its session.
   */
  constructor(url: string, options?: MySqlOptions, clock?: Clock) {
    const { backend, settings } = sqlBackend(
      mysqlDialect,
      url,
      ['mysql:', 'mariadb:'],
      3306,
      options,
      clock,
    );
    super(backend, settings, clock);
  }
}

/**
 * The entry point `connect()` uses for mysql:// and mariadb:// URLs; rejects with
 * MissingDriverError at once when the driver is not installed.
 */
export async function openProvider(urls: readonly string[], options?: object): Promise<MySqlLocks> {
  const provider = new MySqlLocks(urls[0]!, options as MySqlOptions);
  await loadMySql2();
  return provider;
}
