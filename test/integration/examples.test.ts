/**
 * Every code example of the docs, as a user runs it: the files of
 * docs/examples/ that the docs show verbatim, run with Node against local
 * redis-server masters (and a separate store for the fencing examples), and
 * the other backends' examples against one PostgreSQL, one MariaDB and one
 * ZooKeeper server, through the built package (`npm run build` first), and
 * type-checked under strict TypeScript.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check, codeBlocks, DOCS, ROOT } from '../../scripts/doc-examples.mjs';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';
import { startMySql } from '../harness/mysql.mjs';
import { startPostgres } from '../harness/postgres.mjs';
import { startZooKeeper } from '../harness/zookeeper.mjs';

const run = promisify(execFile);
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const EXAMPLES = join(ROOT, 'docs', 'examples');

/** What each example must print (one pattern per line it must contain), by file. */
const EXPECTED: Record<string, RegExp[]> = {
  'readme-usage.mjs': [/^charged \{ id: 42, fence: \d+ \}$/m],
  'guide-getting-started.mjs': [/^holding invoice:42 with fence \d+, \d+ ms left$/m],
  'guide-acquire.mjs': [
    /^tryAcquire while held: null$/m,
    /^tryAcquire after release: true$/m,
    /^waiter gave up: TimeoutError$/m,
  ],
  'guide-renewal.mjs': [
    /^still held after 3 s: true \d+ ms left$/m,
    /^extended: \d+ ms left$/m,
    /^after extend\(500\): \d+ ms left$/m,
  ],
  'guide-using.mjs': [
    /^rows: 500$/m,
    /^using rejected with the routine error: the export failed$/m,
  ],
  'guide-lost-signal.mjs': [
    /^onLost: ERR_LOCK_LOST /m,
    /^signal aborted with LockLostError, -?\d+\.\d ms before the deadline$/m,
  ],
  'guide-waiting.mjs': [/^handed over [\d.]+ ms after the release$/m, /^taken -?[\d.]+ ms after/m],
  'guide-leader.mjs': [/elected, fence \d+$/m, /runs the job with fence \d+$/m],
  'guide-fencing.mjs': [/accepted: true/, /accepted: false/],
  'guide-semaphore.mjs': [
    /^5 files encoded, at most [12] at once$/m,
    /^a third permit while two are held: null$/m,
    /^after a release: true$/m,
  ],
  'guide-rwlock.mjs': [
    /^two readers at once: true$/m,
    /^a writer while they read: null$/m,
    /^writer fence above the readers before it: true$/m,
    /^a reader while it writes: null$/m,
    /^read with fence \d+$/m,
  ],
  'guide-inspect.mjs': [/^true /m],
  'guide-diagnostics.mjs': [/^quorumlock:acquire true /m, /^quorumlock:release true /m],
  'guide-errors.mjs': [
    /^ERR_LOCK_ACQUIRE_TIMEOUT - .*\(cause: ERR_LOCK_\w+\)$/m,
    /^ERR_LOCK_INVALID_ARGUMENT - /m,
    /^not a LockError: TimeoutError$/m,
    /^ERR_LOCK_CLOSED$/m,
  ],
  'fencing-tokens.mjs': [/^\d+$/m, /^\{ 'account:1': \d+, 'account:2': \d+ \}$/m],
  'fencing-guard.mjs': [/^total 129\.5 written with token \d+$/m],
  'fencing-shared-mark.mjs': [/^mark: \d+$/m],
  'fencing-claim.mjs': [/^visits: \d+$/m],
  'operations-own-clients.mjs': [/^held with fence \d+ aborted: false$/m],
  'readme-commonjs.cjs': [/^holding report:daily with fence \d+$/m],
  'observability-otel.mjs': [
    /^while held, tryAcquire gives null$/m,
    /^quorumlock\.lock\.acquire\.duration s \{"quorumlock\.lock\.outcome":"acquired"\} count=1$/m,
    /^quorumlock\.lock\.acquire\.duration s \{"quorumlock\.lock\.outcome":"taken"\} count=1$/m,
    /^span quorumlock release released$/m,
  ],
};

/**
 * What each example of the other backends must print, by file: they read the
 * URLs of their servers from POSTGRES_URL, MYSQL_URL and ZOOKEEPER_URL (and the
 * Redis masters from QUORUMLOCK_NODES).
 */
const EXPECTED_ON_SERVERS: Record<string, RegExp[]> = {
  'readme-backends.mjs': [
    /^redis: held report:daily with fence \d+$/m,
    /^postgres: held report:daily with fence \d+$/m,
    /^mysql: held report:daily with fence \d+$/m,
    /^zookeeper: held report:daily with fence \d+$/m,
  ],
  'postgres-using.mjs': [/^charged invoice 42 with fence \d+$/m],
  'mysql-connect.mjs': [/^holding invoice:42 with fence \d+$/m],
  'zookeeper-getting-started.mjs': [/^charged invoice 42 with fence \d+$/m],
};

/**
 * Examples shown in the docs that another test runs (they need other servers
 * or packages), by file, with that test.
 */
const RUN_ELSEWHERE: Record<string, string> = {
  'docs/examples/fencing-sqlite.mjs': 'test/unit/guard-examples.test.ts',
};

let locks: Ensemble;
let store: Ensemble;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
    throw new Error(
      'dist/ is missing: run `npm run build` first (the examples import the package)',
    );
  }
  [locks, store] = await Promise.all([startEnsemble({ size: 3 }), startEnsemble({ size: 1 })]);
  env = {
    PATH: process.env.PATH,
    QUORUMLOCK_NODES: locks.urls.join(','),
    STORE_URL: store.urls[0],
  };
});

afterAll(async () => {
  await Promise.all([locks?.stop(), store?.stop()]);
});

/**
 * Runs `node file` in the repository (so `quorumlock` resolves to the package
 * itself), with the servers' URLs in `env` and `extraEnv`.
 */
async function node(file: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await run(process.execPath, [file], {
    cwd: ROOT,
    env: { ...env, ...extraEnv },
    timeout: 30_000,
  });
  return stdout;
}

describe('docs examples', () => {
  it('every JavaScript and TypeScript block of the docs is an example file, shown verbatim', () => {
    expect(check()).toEqual([]);
  });

  it('every example the docs show is run here', () => {
    const shown = DOCS.flatMap((doc) =>
      codeBlocks(readFileSync(join(ROOT, doc), 'utf8'), doc).flatMap((b) => b.file ?? []),
    );
    const runHere = new Set([
      ...[...Object.keys(EXPECTED), ...Object.keys(EXPECTED_ON_SERVERS)].map(
        (f) => `docs/examples/${f}`,
      ),
      'docs/examples/guide-await-using.ts',
      ...Object.keys(RUN_ELSEWHERE),
    ]);
    expect(shown.filter((f) => !runHere.has(f))).toEqual([]);
  });

  it('type-check under strict TypeScript', async () => {
    const result = await run(TSC, ['-p', join(EXAMPLES, 'tsconfig.json')], { cwd: ROOT }).then(
      () => '',
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    expect(result).toBe('');
  });

  for (const [file, patterns] of Object.entries(EXPECTED)) {
    it(`${file} runs on Node as written`, async () => {
      const stdout = await node(join(EXAMPLES, file));
      for (const pattern of patterns) expect(stdout).toMatch(pattern);
    });
  }

  it('guide-await-using.ts runs on Node once compiled by TypeScript', async () => {
    const out = join(ROOT, 'build-check', 'examples');
    await run(
      TSC,
      [
        join(EXAMPLES, 'guide-await-using.ts'),
        ...['--target', 'ES2022', '--module', 'NodeNext', '--lib', 'ES2022,ESNext.Disposable'],
        ...['--types', 'node', '--skipLibCheck', '--strict', '--ignoreConfig'],
        ...['--rootDir', EXAMPLES, '--outDir', out],
      ],
      { cwd: ROOT },
    );
    const stdout = await node(join(out, 'guide-await-using.js'));
    expect(stdout).toMatch(/^locked with fence \d+$/m);
    expect(stdout).toMatch(/^released: true$/m);
  });
});

describe('docs examples of the other backends', () => {
  // One server of each kind, started only when these examples run.
  const servers = {
    postgres: undefined as ReturnType<typeof startPostgres> | undefined,
    mysql: undefined as ReturnType<typeof startMySql> | undefined,
    zookeeper: undefined as ReturnType<typeof startZooKeeper> | undefined,
  };
  let urls: NodeJS.ProcessEnv;

  beforeAll(async () => {
    servers.postgres = startPostgres();
    servers.mysql = startMySql();
    servers.zookeeper = startZooKeeper();
    const [postgres, mysql, zookeeper] = await Promise.all([
      servers.postgres,
      servers.mysql,
      servers.zookeeper,
    ]);
    urls = {
      POSTGRES_URL: postgres.url,
      MYSQL_URL: mysql.url,
      ZOOKEEPER_URL: zookeeper.url('/locks'),
    };
  }, 120_000);

  afterAll(async () => {
    // A server that failed to start has nothing to stop.
    const stop = async (started: Promise<{ stop(): Promise<void> }> | undefined) =>
      (await started?.catch(() => undefined))?.stop();
    await Promise.all(Object.values(servers).map(stop));
  });

  for (const [file, patterns] of Object.entries(EXPECTED_ON_SERVERS)) {
    it(`${file} runs on Node as written`, async () => {
      const stdout = await node(join(EXAMPLES, file), urls);
      for (const pattern of patterns) expect(stdout).toMatch(pattern);
    });
  }
});
