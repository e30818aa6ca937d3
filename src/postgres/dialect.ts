/**
 * PostgreSQL session advisory locks through `pg`: `pg_try_advisory_lock` in
 * the single-bigint key space, a fence counter row bumped with an upsert,
 * `pg_locks` for inspect. The driver is loaded on first use.
 */
import type { Client, ClientConfig } from 'pg';
import type { SqlDialect } from '../sql/backend.js';
import { CloseNotice, driverLoader, type SqlConnection, type SqlSession } from '../sql/session.js';

/** Loads `pg`, or rejects with a MissingDriverError naming it. */
export const loadPg = driverLoader<{ Client: new (config: ClientConfig) => Client }>(
  'pg',
  'PostgreSQL',
  () => import('pg'),
);

async function open(url: string, connectTimeoutMs: number): Promise<SqlConnection> {
  const pg = await loadPg();
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    keepAlive: true,
    application_name: 'quorumlock',
  });
  const closed = new CloseNotice();
  client.on('error', (err) => closed.fire(err));
  client.on('end', () => closed.fire(undefined));
  const destroy = () => {
    closed.fire(undefined);
    client.connection.stream.destroy();
  };
  try {
    await client.connect();
  } catch (err) {
    destroy();
    throw err;
  }
  const id = String((client as unknown as { processID: number }).processID);
  return {
    id,
    async query(text, params) {
      const result = await client.query(text, params as unknown[]);
      return { rows: result.rows };
    },
    onClose: (listener) => closed.onClose(listener),
    end: () => client.end(),
    destroy,
  };
}

const text = (keys: readonly bigint[]) => keys.map(String);

/** The PostgreSQL dialect of the SQL backend. */
export const postgresDialect: SqlDialect = {
  label: 'PostgreSQL',
  open,
  async tryLock(s: SqlSession, keys, timeoutMs) {
    const { rows } = await s.query(
      'SELECT pg_try_advisory_lock(k) AS ok FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, i) ORDER BY i',
      [text(keys)],
      timeoutMs,
    );
    return rows.map((r) => r.ok === true);
  },
  async waitLock(s, keys, waitMs, timeoutMs) {
    // One row, its columns evaluated left to right: lock_timeout first, then each key in order.
    const locks = keys.map((_, i) => `pg_advisory_lock($${i + 2}::bigint)`).join(', ');
    try {
      await s.query(
        `SELECT set_config('lock_timeout', $1, true), ${locks}`,
        [`${Math.max(1, Math.ceil(waitMs))}ms`, ...text(keys)],
        waitMs + timeoutMs,
      );
      return keys.map(() => true);
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      // lock_not_available (lock_timeout) or query_canceled (an abort): nothing waits any more,
      // and session locks taken before the error outlive the failed statement.
      if (code !== '55P03' && code !== '57014') throw err;
      await s.query('SELECT pg_advisory_unlock_all()', [], timeoutMs);
      return keys.map(() => false);
    }
  },
  async cancel(s, id, timeoutMs) {
    await s.query('SELECT pg_cancel_backend($1::int)', [Number(id)], timeoutMs);
  },
  async unlock(s, keys, timeoutMs) {
    await s.query(
      'SELECT pg_advisory_unlock(k) FROM unnest($1::bigint[]) AS t(k)',
      [text(keys)],
      timeoutMs,
    );
  },
  async bumpFences(s, table, keys, holder, timeoutMs) {
    const { rows } = await s.query(
      `INSERT INTO ${table} AS f (k, token, holder) SELECT k, 1, $2 FROM unnest($1::bigint[]) AS t(k) ORDER BY k ` +
        'ON CONFLICT (k) DO UPDATE SET token = f.token + 1, holder = EXCLUDED.holder RETURNING k::text AS k, token::text AS token',
      [text(keys), holder],
      timeoutMs,
    );
    const byKey = new Map(rows.map((r) => [String(r.k), Number(r.token)]));
    return keys.map((k) => byKey.get(String(k))!);
  },
  fenceTableSql: (table) =>
    `CREATE TABLE IF NOT EXISTS ${table} (k bigint PRIMARY KEY, token bigint NOT NULL, holder text)`,
  isMissingTable: (err) => (err as { code?: unknown } | null)?.code === '42P01',
  async holder(s, table, key, timeoutMs) {
    const unsigned = BigInt.asUintN(64, key);
    const { rows } = await s.query(
      "SELECT pid::text AS pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 " +
        'AND classid = $1::bigint::oid AND objid = $2::bigint::oid',
      [String(unsigned >> 32n), String(unsigned & 0xffffffffn)],
      timeoutMs,
    );
    const session = rows.length > 0 ? String(rows[0]!.pid) : null;
    let fence: number | null = null;
    let value: string | null = null;
    try {
      const row = (
        await s.query(
          `SELECT token::text AS token, holder FROM ${table} WHERE k = $1`,
          [String(key)],
          timeoutMs,
        )
      ).rows[0];
      if (row) {
        fence = Number(row.token);
        value = (row.holder as string | null) ?? null;
      }
    } catch (err) {
      if (!postgresDialect.isMissingTable(err)) throw err;
    }
    return { session, fence, value: session === null ? null : value };
  },
};
