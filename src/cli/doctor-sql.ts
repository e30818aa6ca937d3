/**
 * `quorumlock doctor` on a `postgres://` or `mysql://` URL: checks what
 * session locks rest on. The session must be ours from one statement to the
 * next (no transaction-mode pooler such as PgBouncer `pool_mode =
 * transaction`, no multiplexing proxy), the server must be a writable
 * primary, the role must be able to use (or create) the fence table, and the
 * server should notice a vanished holder. It takes and releases one lock on a
 * random name and writes nothing else.
 */
import { randomBytes } from 'node:crypto';
import { mysqlDialect } from '../mysql/dialect.js';
import { postgresDialect } from '../postgres/dialect.js';
import { backendOf } from '../provider.js';
import type { SqlDialect } from '../sql/backend.js';
import { lockKey, lockName } from '../sql/keys.js';
import { SqlSession } from '../sql/session.js';
import { redactUrl } from './args.js';
import type { Check, DoctorReport } from './doctor.js';

/** Options of runSqlDoctor. */
export interface SqlDoctorOptions {
  /** Connect and statement timeout, ms. */
  readonly timeoutMs: number;
  /** The fence table the providers use. Default `quorumlock_fence`. */
  readonly fenceTable?: string;
}

/** What the session check saw: the lock taken by statement 1 and still ours at statement 3. */
export interface SessionObservation {
  /** Server session id of statements 1 and 3 on the first connection, and of the second connection. */
  readonly first: string;
  readonly again: string;
  readonly other: string;
  /** Statement 3 released the lock statement 1 took: the session kept it. */
  readonly kept: boolean;
}

/** The verdict on a session observation: a pooler that does not keep sessions fails it. */
export function judgeSession(o: SessionObservation): Check {
  const pooled = o.first === o.other || o.first !== o.again || !o.kept;
  if (!pooled) {
    return {
      name: 'session',
      status: 'pass',
      detail: `a lock taken in one statement was still held in the next (session ${o.first})`,
    };
  }
  return {
    name: 'session',
    status: 'fail',
    detail:
      o.first === o.other
        ? `two connections were given the same server session (${o.first}): a pooler multiplexes sessions`
        : `the lock taken in one statement was gone in the next (session ${o.first}, then ${o.again}): a transaction-mode pooler`,
    fix: 'point the URL at the database server itself or at a session-mode pooler (PgBouncer pool_mode = session); session locks need their own session',
  };
}

interface Probe {
  readonly dialect: SqlDialect;
  version(s: SqlSession, t: number): Promise<string>;
  /** Why the server cannot take writes, or undefined for a writable primary. */
  readOnly(s: SqlSession, t: number): Promise<string | undefined>;
  /** Statement 1 (take `key`) and 3 (release it), each with the session id. */
  take(s: SqlSession, key: bigint, t: number): Promise<string>;
  give(s: SqlSession, key: bigint, t: number): Promise<{ id: string; kept: boolean }>;
  sessionId(s: SqlSession, t: number): Promise<string>;
  fenceTable(
    s: SqlSession,
    table: string,
    t: number,
  ): Promise<{ exists: boolean; usable: boolean; canCreate: boolean | undefined }>;
  /** Backend-specific checks. */
  extra(s: SqlSession, t: number): Promise<Check[]>;
}

const first = async (s: SqlSession, sql: string, params: unknown[], t: number) =>
  (await s.query(sql, params, t)).rows[0] ?? {};

const postgres: Probe = {
  dialect: postgresDialect,
  version: async (s, t) => String((await first(s, 'SHOW server_version', [], t)).server_version),
  async readOnly(s, t) {
    const row = await first(
      s,
      "SELECT pg_is_in_recovery() AS standby, current_setting('default_transaction_read_only') AS ro",
      [],
      t,
    );
    if (row.standby === true) return 'it is a standby (in recovery)';
    if (row.ro === 'on') return 'default_transaction_read_only is on';
    return undefined;
  },
  take: async (s, key, t) =>
    String(
      (
        await first(
          s,
          'SELECT pg_backend_pid()::text AS id, pg_try_advisory_lock($1::bigint) AS ok',
          [String(key)],
          t,
        )
      ).id,
    ),
  async give(s, key, t) {
    const row = await first(
      s,
      'SELECT pg_backend_pid()::text AS id, pg_advisory_unlock($1::bigint) AS kept',
      [String(key)],
      t,
    );
    return { id: String(row.id), kept: row.kept === true };
  },
  sessionId: async (s, t) =>
    String((await first(s, 'SELECT pg_backend_pid()::text AS id', [], t)).id),
  async fenceTable(s, table, t) {
    const row = await first(
      s,
      "SELECT to_regclass($1) IS NOT NULL AS present, has_schema_privilege(current_schema(), 'CREATE') AS can_create",
      [table],
      t,
    );
    if (row.present !== true) {
      return { exists: false, usable: false, canCreate: row.can_create === true };
    }
    const usable = await first(
      s,
      "SELECT has_table_privilege($1, 'SELECT, INSERT, UPDATE') AS ok",
      [table],
      t,
    );
    return { exists: true, usable: usable.ok === true, canCreate: undefined };
  },
  async extra(s, t) {
    const row = await first(
      s,
      "SELECT current_setting('tcp_keepalives_idle') AS idle, current_setting('client_connection_check_interval') AS check",
      [],
      t,
    );
    const detail = `tcp_keepalives_idle ${row.idle}, client_connection_check_interval ${row.check}`;
    const defaults = (row.idle === '0' || row.idle === '7200') && row.check === '0';
    return [
      defaults
        ? {
            name: 'dead holder',
            status: 'warn',
            detail: `${detail}: a holder that vanishes without closing its connection keeps its locks for the OS keepalive time (about 2 h)`,
            fix: 'set tcp_keepalives_idle / tcp_keepalives_interval / tcp_keepalives_count (or client_connection_check_interval) so the server ends dead sessions in seconds',
          }
        : { name: 'dead holder', status: 'pass', detail },
    ];
  },
};

const mysql: Probe = {
  dialect: mysqlDialect,
  version: async (s, t) => String((await first(s, 'SELECT VERSION() AS v', [], t)).v),
  async readOnly(s, t) {
    const row = await first(s, 'SELECT @@read_only AS ro', [], t);
    return Number(row.ro) === 1 ? 'read_only is on (a replica?)' : undefined;
  },
  take: async (s, key, t) =>
    String(
      (await first(s, 'SELECT CONNECTION_ID() AS id, GET_LOCK(?, 0) AS ok', [lockName(key)], t)).id,
    ),
  async give(s, key, t) {
    const row = await first(
      s,
      'SELECT CONNECTION_ID() AS id, RELEASE_LOCK(?) AS kept',
      [lockName(key)],
      t,
    );
    return { id: String(row.id), kept: Number(row.kept) === 1 };
  },
  sessionId: async (s, t) => String((await first(s, 'SELECT CONNECTION_ID() AS id', [], t)).id),
  async fenceTable(s, table, t) {
    const [schema, name] = table.includes('.') ? table.split('.') : [null, table];
    const row = await first(
      s,
      'SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?',
      [schema, name],
      t,
    );
    if (Number(row.n) > 0) {
      // Privileges are proven by use: a no-op update of a row that cannot exist.
      try {
        await s.query(`UPDATE ${table} SET token = token WHERE k IS NULL`, [], t);
        await s.query(`SELECT token FROM ${table} WHERE k IS NULL`, [], t);
        return { exists: true, usable: true, canCreate: undefined };
      } catch {
        return { exists: true, usable: false, canCreate: undefined };
      }
    }
    const grants = await first(
      s,
      "SELECT (SELECT COUNT(*) FROM information_schema.user_privileges WHERE privilege_type = 'CREATE') + " +
        "(SELECT COUNT(*) FROM information_schema.schema_privileges WHERE privilege_type = 'CREATE' AND table_schema = COALESCE(?, DATABASE())) AS n",
      [schema],
      t,
    );
    return { exists: false, usable: false, canCreate: Number(grants.n) > 0 };
  },
  async extra(s, t) {
    // Before MySQL 5.7 / MariaDB 10.0.2 a second GET_LOCK silently released the first.
    const [a, b] = [doctorKey(), doctorKey()];
    await first(
      s,
      'SELECT GET_LOCK(?, 0) AS a, GET_LOCK(?, 0) AS b',
      [lockName(a), lockName(b)],
      t,
    );
    const row = await first(
      s,
      'SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS a, IS_USED_LOCK(?) = CONNECTION_ID() AS b',
      [lockName(a), lockName(b)],
      t,
    );
    await s.query('DO RELEASE_LOCK(?), RELEASE_LOCK(?)', [lockName(a), lockName(b)], t);
    const both = Number(row.a) === 1 && Number(row.b) === 1;
    return [
      both
        ? { name: 'many locks', status: 'pass', detail: 'one session holds several locks at once' }
        : {
            name: 'many locks',
            status: 'fail',
            detail:
              'a second GET_LOCK released the first (MySQL before 5.7, MariaDB before 10.0.2)',
            fix: 'upgrade the server: multi-resource locks need several locks per session',
          },
    ];
  },
};

function doctorKey(): bigint {
  return lockKey(`quorumlock:doctor:${randomBytes(8).toString('hex')}`);
}

/** Runs the checks on the server of `url` (postgres:// or mysql://). */
export async function runSqlDoctor(url: string, options: SqlDoctorOptions): Promise<DoctorReport> {
  const probe = backendOf(url) === 'postgres' ? postgres : mysql;
  const t = options.timeoutMs;
  const table = options.fenceTable ?? 'quorumlock_fence';
  const checks: Check[] = [];
  const sessions: SqlSession[] = [];
  const open = async () => {
    const s = new SqlSession(await probe.dialect.open(url, t));
    sessions.push(s);
    return s;
  };
  try {
    const started = performance.now();
    let a: SqlSession;
    try {
      a = await open();
    } catch (err) {
      checks.push({
        name: 'reachable',
        status: 'fail',
        detail: message(err),
        fix: `check the URL, that the ${probe.dialect.label} server is up and this role may log in`,
      });
      return report(url, checks);
    }
    const version = await probe.version(a, t);
    checks.push({
      name: 'reachable',
      status: 'pass',
      detail: `${probe.dialect.label} ${version}, connected in ${Math.round(performance.now() - started)} ms`,
    });
    const readOnly = await probe.readOnly(a, t);
    checks.push(
      readOnly === undefined
        ? { name: 'primary', status: 'pass', detail: 'a writable primary' }
        : {
            name: 'primary',
            status: 'fail',
            detail: `${readOnly}: fence tokens cannot be written, and locks are not shared with the primary`,
            fix: 'point the URL at the primary',
          },
    );
    const key = doctorKey();
    const firstId = await probe.take(a, key, t);
    const b = await open();
    const other = await probe.sessionId(b, t);
    const { id: again, kept } = await probe.give(a, key, t);
    checks.push(judgeSession({ first: firstId, again, other, kept }));
    const fence = await probe.fenceTable(a, table, t);
    const migration = `${probe.dialect.fenceTableSql(table).replace(' IF NOT EXISTS', '')}; then grant SELECT, INSERT, UPDATE on it to this role`;
    checks.push(
      fence.exists
        ? fence.usable
          ? {
              name: 'fence table',
              status: 'pass',
              detail: `${table} exists and this role can use it`,
            }
          : {
              name: 'fence table',
              status: 'fail',
              detail: `${table} exists but this role cannot read and update it`,
              fix: `GRANT SELECT, INSERT, UPDATE ON ${table} TO this role, or set fencing: false`,
            }
        : fence.canCreate
          ? {
              name: 'fence table',
              status: 'pass',
              detail: `${table} does not exist yet; this role can create it (on first use)`,
            }
          : {
              name: 'fence table',
              status: 'fail',
              detail: `${table} does not exist and this role cannot create it`,
              fix: `as a role with DDL rights run: ${migration}; or set fencing: false`,
            },
    );
    checks.push(...(await probe.extra(a, t)));
  } catch (err) {
    checks.push({
      name: 'probe',
      status: 'fail',
      detail: `stopped checking after an error: ${message(err)}`,
    });
  } finally {
    await Promise.all(sessions.map((s) => s.end(t)));
  }
  return report(url, checks);
}

function report(url: string, checks: Check[]): DoctorReport {
  const counts = { pass: 0, warn: 0, fail: 0 };
  for (const c of checks) counts[c.status]++;
  return {
    quorum: 1,
    nodes: [{ node: redactUrl(url), checks }],
    ensemble: [],
    counts,
    ok: counts.fail === 0,
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
