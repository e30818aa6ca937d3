/**
 * The package as users get it: `npm pack`, installed into a fresh project,
 * then required, imported, type-checked under `nodenext` and `bundler`
 * resolution, linted by publint and arethetypeswrong, and its `quorumlock
 * bench` run against a local ensemble. Needs `npm run build` first (as
 * `npm test` does).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'node_modules', '.bin');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
/** Every subpath of the exports map that is code (not ./package.json). */
const SUBPATHS = Object.keys(pkg.exports)
  .filter((k) => k !== './package.json')
  .map((k) => (k === '.' ? 'quorumlock' : `quorumlock/${k.slice(2)}`));
const OTEL_API = `@opentelemetry/api@${pkg.devDependencies['@opentelemetry/api']}`;

let dir: string;
let app: string;
let tarball: string;
let ensemble: Ensemble;

/** Runs a command, failing with its output when it exits non-zero. */
async function sh(
  file: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(file, args, {
      cwd,
      env: { ...process.env, NO_COLOR: '1', ...env },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    throw new Error(
      `${file} ${args.join(' ')} exited ${e.code}\n--- stdout\n${e.stdout}\n--- stderr\n${e.stderr}`,
    );
  }
}

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist', 'cjs', 'index.js'))) {
    throw new Error('dist/ is missing or has no CommonJS build: run `npm run build` first');
  }
  ensemble = await startEnsemble({ size: 3 });
  dir = await mkdtemp(join(tmpdir(), 'quorumlock-packed-'));
  const packed = await sh('npm', ['pack', '--json', '--pack-destination', dir], ROOT);
  tarball = join(dir, JSON.parse(packed.stdout)[0].filename);
  app = join(dir, 'app');
  await mkdir(app);
  await writeFile(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2)}\n`,
  );
  // From npm's cache, which `npm ci` of this repository filled; the registry only for a miss.
  await sh(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      '--no-package-lock',
      tarball,
      OTEL_API,
    ],
    app,
  );
}, 120_000);

afterAll(async () => {
  await ensemble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Consumer code shared by the CommonJS and ESM checks: take a lock, print what we saw. */
function consumerBody(load: string): string {
  return `${load}
const urls = JSON.parse(process.env.NODES);
const main = mods['quorumlock'];
const redlock = new main.Redlock(urls, { ttl: 5000 });
const lock = await redlock.acquire('packed:' + process.env.FORMAT);
const fence = lock.fence;
await lock.release();
await redlock.close();
console.log(JSON.stringify({
  loaded: Object.keys(mods).sort(),
  fence,
  lockError: typeof main.LockError,
  otel: typeof mods['quorumlock/otel'].instrumentQuorumlock,
}));`;
}

describe('the packed package', () => {
  it('works from require() in a CommonJS project, every subpath included', async () => {
    await writeFile(
      join(app, 'consumer.cjs'),
      `(async () => {\n${consumerBody(
        `const mods = {};\nfor (const id of ${JSON.stringify(SUBPATHS)}) mods[id] = require(id);`,
      )}\n})().catch((err) => { console.error(err); process.exit(1); });\n`,
    );
    const { stdout } = await sh(process.execPath, ['consumer.cjs'], app, {
      NODES: JSON.stringify(ensemble.urls),
      FORMAT: 'cjs',
    });
    const out = JSON.parse(stdout);
    expect(out.loaded).toEqual([...SUBPATHS].sort());
    expect(out.fence).toBeGreaterThan(0);
    expect(out.lockError).toBe('function');
    expect(out.otel).toBe('function');
    // The CommonJS build, not Node's require(esm): the file required is dist/cjs.
    const resolved = await sh(process.execPath, ['-p', "require.resolve('quorumlock')"], app);
    expect(resolved.stdout.trim()).toMatch(/dist[\\/]cjs[\\/]index\.js$/);
  });

  it('works from import in an ES module, every subpath included', async () => {
    await writeFile(
      join(app, 'consumer.mjs'),
      `${consumerBody(
        `const mods = {};\nfor (const id of ${JSON.stringify(SUBPATHS)}) mods[id] = await import(id);`,
      )}\n`,
    );
    const { stdout } = await sh(process.execPath, ['consumer.mjs'], app, {
      NODES: JSON.stringify(ensemble.urls),
      FORMAT: 'esm',
    });
    const out = JSON.parse(stdout);
    expect(out.loaded).toEqual([...SUBPATHS].sort());
    expect(out.fence).toBeGreaterThan(0);
    expect(out.otel).toBe('function');
  });

  it('type-checks, compiles and runs a TypeScript consumer under nodenext, and type-checks under bundler', async () => {
    const code = `import { channels, type Lock, LockError, Redlock, type RoundEvent } from 'quorumlock';
import { instrumentQuorumlock, type QuorumlockInstrumentation } from 'quorumlock/otel';

export async function main(urls: string[]): Promise<number | undefined> {
  const bridge: QuorumlockInstrumentation = instrumentQuorumlock({ traces: false });
  const redlock = new Redlock(urls, { ttl: 5_000 });
  try {
    const lock: Lock = await redlock.acquire('packed:ts');
    const fence: number | undefined = lock.fence;
    await lock.release();
    const onRound = (event: RoundEvent): boolean => event.ok;
    void onRound;
    void channels.acquire;
    void LockError;
    return fence;
  } finally {
    bridge.unsubscribe();
    await redlock.close();
  }
}
`;
    await mkdir(join(app, 'ts'), { recursive: true });
    await writeFile(join(app, 'ts', 'lib.mts'), code);
    await writeFile(join(app, 'ts', 'lib.cts'), code);
    await writeFile(
      join(app, 'ts', 'main.mts'),
      `import { main } from './lib.mjs';
import cjs from './lib.cjs';
const urls = JSON.parse(process.env.NODES ?? '[]') as string[];
console.log(JSON.stringify({ esm: await main(urls), cjs: await cjs.main(urls) }));
`,
    );
    await writeFile(join(app, 'ts', 'bundler.ts'), code);
    const common = {
      strict: true,
      target: 'ES2022',
      lib: ['ES2022', 'ESNext.Disposable'],
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      skipLibCheck: false,
    };
    await writeFile(
      join(app, 'tsconfig.nodenext.json'),
      JSON.stringify({
        compilerOptions: {
          ...common,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          rootDir: 'ts',
          outDir: 'out',
        },
        files: ['ts/lib.mts', 'ts/lib.cts', 'ts/main.mts'],
      }),
    );
    await writeFile(
      join(app, 'tsconfig.bundler.json'),
      JSON.stringify({
        compilerOptions: {
          ...common,
          module: 'preserve',
          moduleResolution: 'bundler',
          noEmit: true,
          // The nodenext build above already checks the declaration files themselves.
          skipLibCheck: true,
        },
        files: ['ts/bundler.ts'],
      }),
    );
    await Promise.all([
      sh(join(BIN, 'tsc'), ['-p', 'tsconfig.nodenext.json'], app),
      sh(join(BIN, 'tsc'), ['-p', 'tsconfig.bundler.json'], app),
    ]);
    const { stdout } = await sh(process.execPath, [join('out', 'main.mjs')], app, {
      NODES: JSON.stringify(ensemble.urls),
    });
    const out = JSON.parse(stdout);
    expect(out.esm).toBeGreaterThan(0);
    expect(out.cjs).toBeGreaterThan(out.esm);
  });

  it('passes publint and arethetypeswrong', async () => {
    // Both exit non-zero on any problem; publint's --strict counts warnings too.
    // The node16 profile checks node16/nodenext from CommonJS and ESM, and bundler;
    // it leaves out node10 (TypeScript's pre-exports resolution), which cannot see subpaths.
    const [, attw] = await Promise.all([
      sh(join(BIN, 'publint'), ['run', tarball, '--strict'], ROOT),
      sh(join(BIN, 'attw'), [tarball, '--profile', 'node16', '--format', 'json'], ROOT),
    ]);
    const report = JSON.parse(attw.stdout);
    const problems = (report.analysis.problems as { resolutionKind?: string }[]).filter(
      (p) => p.resolutionKind !== 'node10',
    );
    expect(problems).toEqual([]);
    expect(Object.keys(report.analysis.entrypoints).sort()).toEqual(
      Object.keys(pkg.exports).sort(),
    );
  });

  it('runs `quorumlock bench --quick` from the installed bin and prints latency percentiles', async () => {
    const quorumlock = join(app, 'node_modules', '.bin', 'quorumlock');
    const short = [
      '--samples',
      '50',
      '--duration',
      '500ms',
      '--concurrency',
      '4',
      '--clients',
      '2',
    ];
    const md = await sh(
      quorumlock,
      ['bench', '--quick', ...short, '--nodes', ensemble.urls.join(',')],
      app,
    );
    expect(md.stdout).toMatch(
      /\| measure \| count \| p50 \| p90 \| p99 \| p99\.9 \| max \| mean \|/,
    );
    expect(md.stdout).toMatch(/\| sequential acquire \| 50 \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
    expect(md.stdout).toMatch(/Physical limit: [\d.]+ ms/);
    expect(md.stderr).toMatch(/quorumlock bench: sequential/);

    const html = join(dir, 'bench.html');
    const js = await sh(quorumlock, ['bench', '--quick', ...short, '--json', '--html', html], app, {
      QUORUMLOCK_NODES: ensemble.urls.join(','),
    });
    const result = JSON.parse(js.stdout);
    expect(result).toMatchObject({
      tool: 'quorumlock bench',
      schema: 1,
      version: pkg.version,
      quick: true,
      backend: 'redis',
      nodes: ensemble.urls.map((u) => u.replace('redis://', '')),
      quorum: 2,
      settings: {
        samples: 50,
        durationMs: 500,
        concurrency: 4,
        clients: 2,
        holdMs: 0,
        ttlMs: 10_000,
      },
    });
    const summary = expect.objectContaining({
      count: expect.any(Number),
      minMs: expect.any(Number),
      p50Ms: expect.any(Number),
      p90Ms: expect.any(Number),
      p99Ms: expect.any(Number),
      p999Ms: expect.any(Number),
      maxMs: expect.any(Number),
      meanMs: expect.any(Number),
    });
    expect(result.rtt.nodes).toHaveLength(3);
    for (const node of result.rtt.nodes) expect(node).toMatchObject({ ok: true, rtt: summary });
    expect(result.rtt.physicalLimitMs).toBeGreaterThan(0);
    expect(result.sequential).toMatchObject({ acquire: summary, release: summary });
    expect(result.sequential.acquire.count).toBe(50);
    expect(result.sequential.acquire.p50Ms).toBeLessThanOrEqual(result.sequential.acquire.p99Ms);
    expect(result.throughput).toMatchObject({
      concurrency: 4,
      cycles: expect.any(Number),
      cyclesPerSecond: expect.any(Number),
      acquire: summary,
    });
    expect(result.throughput.cycles).toBeGreaterThan(0);
    expect(result.contended).toMatchObject({ clients: 2, handoff: summary });
    // Failures are counted, by code; a loaded machine may time out a round now and then.
    for (const m of ['sequential', 'throughput', 'contended']) {
      const codes = Object.values(result[m].errorCodes as Record<string, number>);
      expect(
        codes.reduce((a, b) => a + b, 0),
        m,
      ).toBe(result[m].errors);
    }
    expect(result.contended.shares).toHaveLength(2);
    expect(result.contended.acquisitions).toBeGreaterThan(0);

    const page = await readFile(html, 'utf8');
    expect(page).toMatch(/^<!doctype html>/);
    expect((page.match(/<svg /g) ?? []).length).toBe(4);
    // Self-contained: nothing fetched from elsewhere.
    expect(page).not.toMatch(/<script|<link|src=|href=/);
  });
});
