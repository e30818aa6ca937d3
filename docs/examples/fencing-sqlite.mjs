// Fencing tokens guarding an SQL database: the two patterns of docs/fencing.md,
// run against SQLite (sql.js, in memory) so it needs no server.
//
//   node docs/examples/fencing-sqlite.mjs
//
// The tokens below stand for `lock.fence` of two successive holders of the
// lock on "invoice:42": A acquired first, stalled (a GC pause, a swapped-out
// VM) until its lock expired, then B acquired and got a higher token. A wakes
// up believing it still holds the lock. Both patterns refuse A's late write.
// Exits non-zero if any outcome differs from the one printed.
import assert from 'node:assert/strict';
import initSqlJs from 'sql.js';

const SQL = await initSqlJs();
const db = new SQL.Database();

// Realistic sizes: a counter seeded from a server clock in microseconds.
const tokenA = 1_718_000_000_000_001;
const tokenB = tokenA + 1;

// ---------------------------------------------------------------------------
// Pattern 1: a fence column on the guarded row. The condition and the write
// are one statement, so no transaction is needed.
db.run(`
  CREATE TABLE invoices (
    id     INTEGER PRIMARY KEY,
    status TEXT    NOT NULL,
    fence  INTEGER NOT NULL DEFAULT 0   -- highest token that wrote this row
  );
  INSERT INTO invoices (id, status) VALUES (42, 'open');
`);

/**
 * Sets the status if `token` is at least the row's fence; true when the row was written.
 * @param {number} id @param {string} status @param {number} token
 */
function setStatus(id, status, token) {
  db.run(
    'UPDATE invoices SET status = $status, fence = $token WHERE id = $id AND fence <= $token',
    {
      $id: id,
      $status: status,
      $token: token,
    },
  );
  return db.getRowsModified() === 1;
}

const shipped = setStatus(42, 'shipped', tokenB); // B, the current holder
const cancelled = setStatus(42, 'cancelled', tokenA); // A, after its pause
console.log(`pattern 1 (fence column): B token ${tokenB} ${verdict(shipped)}`);
console.log(`pattern 1 (fence column): A token ${tokenA} ${verdict(cancelled)}`);
assert.equal(shipped, true);
assert.equal(cancelled, false);
assert.deepEqual(row('SELECT status, fence FROM invoices WHERE id = 42'), ['shipped', tokenB]);

// ---------------------------------------------------------------------------
// Pattern 2: a table of the last token per resource, checked and raised in the
// same transaction as the writes it guards. Fits writes that touch many rows
// or tables (here: appending to a ledger, where there is no row to compare).
db.run(`
  CREATE TABLE fences (
    resource TEXT    PRIMARY KEY,
    token    INTEGER NOT NULL           -- highest token seen for the resource
  );
  CREATE TABLE ledger (
    invoice INTEGER NOT NULL,
    entry   TEXT    NOT NULL,
    token   INTEGER NOT NULL
  );
`);

/**
 * Runs `write` in a transaction if `token` is at least the last token of
 * `resource`, recording it; otherwise rolls back. True when `write` was committed.
 * @param {string} resource @param {number} token @param {() => void} write
 */
function withFence(resource, token, write) {
  // BEGIN IMMEDIATE takes the write lock first, so the check cannot go stale
  // before the writes (PostgreSQL gets the same from the row lock of the upsert).
  db.run('BEGIN IMMEDIATE');
  try {
    db.run(
      `INSERT INTO fences (resource, token) VALUES ($resource, $token)
         ON CONFLICT (resource) DO UPDATE SET token = excluded.token
         WHERE fences.token <= excluded.token`,
      { $resource: resource, $token: token },
    );
    if (db.getRowsModified() === 0) {
      db.run('ROLLBACK');
      return false;
    }
    write();
    db.run('COMMIT');
    return true;
  } catch (err) {
    db.run('ROLLBACK');
    throw err;
  }
}

/** @param {string} entry @param {number} token */
function addEntry(entry, token) {
  return withFence('invoice:42', token, () =>
    db.run('INSERT INTO ledger (invoice, entry, token) VALUES (42, $entry, $token)', {
      $entry: entry,
      $token: token,
    }),
  );
}

const firstA = addEntry('reserve stock', tokenA); // A, before its pause
const entryB = addEntry('ship', tokenB); // B, the current holder
const lateA = addEntry('refund', tokenA); // A, after its pause
console.log(`pattern 2 (token table):  A token ${tokenA} ${verdict(firstA)}`);
console.log(`pattern 2 (token table):  B token ${tokenB} ${verdict(entryB)}`);
console.log(`pattern 2 (token table):  A token ${tokenA} ${verdict(lateA)}`);
assert.deepEqual([firstA, entryB, lateA], [true, true, false]);
assert.deepEqual(rows('SELECT entry, token FROM ledger ORDER BY rowid'), [
  ['reserve stock', tokenA],
  ['ship', tokenB],
]);
assert.deepEqual(row("SELECT token FROM fences WHERE resource = 'invoice:42'"), [tokenB]);

console.log('ok: every late write from the stale holder was rejected');

/** @param {boolean} accepted */
function verdict(accepted) {
  return accepted ? 'accepted' : 'rejected (a newer holder has written)';
}

/** @param {string} sql */
function rows(sql) {
  return db.exec(sql)[0]?.values ?? [];
}

/** @param {string} sql */
function row(sql) {
  return rows(sql)[0];
}
