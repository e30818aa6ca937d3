/**
 * MySQL / MariaDB user locks through `mysql2`: `GET_LOCK(name, 0)` with the
 * hashed name of sql/keys.ts, a fence counter row bumped with
 * `LAST_INSERT_ID(token + 1)`, `IS_USED_LOCK` for inspect. The driver is
 * loaded on first use.
 */
import type { Connection, ConnectionOptions } from 'mysql2';
import type { SqlDialect } from '../sql/backend.js';
import { lockName } from '../sql/keys.js';
import { CloseNotice, driverLoader, type SqlConnection, type SqlResult } from '../sql/session.js';

/** Loads `mysql2`, or rejects with a MissingDriverError naming it. */
export const loadMySql2 = driverLoader<{
  createConnection(options: ConnectionOptions): Connection;
}>('mysql2', 'MySQL', () => import('mysql2'));

async function open(url: string, connectTimeoutMs: number): Promise<SqlConnection> {
  const mysql = await loadMySql2();
  const conn = mysql.createConnection({
    uri: url,
    connectTimeout: connectTimeoutMs,
    enableKeepAlive: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  const closed = new CloseNotice();
  conn.on('error', (err) => closed.fire(err));
  conn.on('end', () => closed.fire(undefined));
  await new Promise<void>((resolve, reject) => {
    conn.once('connect', () => resolve());
    conn.once('error', (err) => {
      conn.destroy();
      reject(err);
    });
  });
  return {
    id: String(conn.threadId),
    query(text, params) {
      return new Promise<SqlResult>((resolve, reject) => {
        conn.query(text, params as unknown[], (err, result) => {
          if (err) {
            if ((err as { fatal?: boolean }).fatal) closed.fire(err);
            reject(err);
          } else if (Array.isArray(result)) {
            resolve({ rows: result as Record<string, unknown>[] });
          } else {
            resolve({ rows: [], insertId: Number((result as { insertId: number }).insertId) });
          }
        });
      });
    },
    onClose: (listener) => closed.onClose(listener),
    end: () =>
      new Promise<void>((resolve) => {
        conn.end(() => resolve());
      }),
    destroy() {
      closed.fire(undefined);
      conn.destroy();
    },
  };
}

/** The MySQL / MariaDB dialect of the SQL backend. */
export const mysqlDialect: SqlDialect = {
  label: 'MySQL',
  open,
  async tryLock(s, keys, timeoutMs) {
    // Evaluated left to right: the keys are taken in the one sorted order.
    const columns = keys.map((_, i) => `GET_LOCK(?, 0) AS l${i}`).join(', ');
    const { rows } = await s.query(`SELECT ${columns}`, keys.map(lockName), timeoutMs);
    const row = rows[0] ?? {};
    return keys.map((_, i) => Number(row[`l${i}`]) === 1);
  },
  async waitLock(s, keys, waitMs, timeoutMs) {
    const deadline = performance.now() + waitMs;
    const taken: bigint[] = [];
    for (const key of keys) {
      const seconds = Math.max(0, deadline - performance.now()) / 1000;
      let ok = false;
      try {
        const { rows } = await s.query(
          'SELECT GET_LOCK(?, ?) AS ok',
          [lockName(key), seconds.toFixed(3)],
          seconds * 1000 + timeoutMs,
        );
        ok = Number(rows[0]?.ok) === 1;
      } catch (err) {
        // ER_QUERY_INTERRUPTED: an abort cancelled the wait (KILL QUERY).
        if ((err as { errno?: unknown } | null)?.errno !== 1317) throw err;
      }
      if (!ok) {
        if (taken.length > 0) await mysqlDialect.unlock(s, taken, timeoutMs);
        return keys.map(() => false);
      }
      taken.push(key);
    }
    return keys.map(() => true);
  },
  async cancel(s, id, timeoutMs) {
    await s.query('KILL QUERY ?', [Number(id)], timeoutMs);
  },
  async unlock(s, keys, timeoutMs) {
    const calls = keys.map(() => 'RELEASE_LOCK(?)').join(', ');
    await s.query(`DO ${calls}`, keys.map(lockName), timeoutMs);
  },
  async bumpFences(s, table, keys, holder, timeoutMs) {
    const tokens: number[] = [];
    for (const key of keys) {
      const { insertId } = await s.query(
        `INSERT INTO ${table} (k, token, holder) VALUES (?, LAST_INSERT_ID(1), ?) ` +
          'ON DUPLICATE KEY UPDATE token = LAST_INSERT_ID(token + 1), holder = VALUES(holder)',
        [String(key), holder],
        timeoutMs,
      );
      tokens.push(insertId!);
    }
    return tokens;
  },
  fenceTableSql: (table) =>
    `CREATE TABLE IF NOT EXISTS ${table} (k BIGINT NOT NULL PRIMARY KEY, token BIGINT NOT NULL, holder VARCHAR(64) NULL) ENGINE=InnoDB`,
  isMissingTable: (err) => (err as { errno?: unknown } | null)?.errno === 1146,
  async holder(s, table, key, timeoutMs) {
    const { rows } = await s.query('SELECT IS_USED_LOCK(?) AS id', [lockName(key)], timeoutMs);
    const id = rows[0]?.id;
    const session = id === null || id === undefined ? null : String(id);
    let fence: number | null = null;
    let value: string | null = null;
    try {
      const row = (
        await s.query(`SELECT token, holder FROM ${table} WHERE k = ?`, [String(key)], timeoutMs)
      ).rows[0];
      if (row) {
        fence = Number(row.token);
        value = (row.holder as string | null) ?? null;
      }
    } catch (err) {
      if (!mysqlDialect.isMissingTable(err)) throw err;
    }
    return { session, fence, value: session === null ? null : value };
  },
};
