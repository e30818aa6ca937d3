/**
 * `quorumlock run` as users run it: the built command (dist/cli/main.js, from
 * `npm run build`) against real redis-server masters.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redlock } from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const NODE = process.execPath;

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

interface Running {
  child: ChildProcess;
  result: Promise<Result>;
  /** Resolves once stdout contains `text`. */
  stdoutHas(text: string): Promise<void>;
  /** Resolves once stderr contains `text`. */
  stderrHas(text: string): Promise<void>;
}

function start(args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const started = performance.now();
  const child = spawn(NODE, [CLI, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: { text: string; err: boolean; resolve: () => void }[] = [];
  const wake = () => {
    for (const w of waiters.filter((w) => (w.err ? stderr : stdout).includes(w.text))) w.resolve();
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    wake();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    wake();
  });
  const has = (text: string, err: boolean) =>
    (err ? stderr : stdout).includes(text)
      ? Promise.resolve()
      : new Promise<void>((resolve) => waiters.push({ text, err, resolve }));
  const result = new Promise<Result>((resolve) => {
    child.once('exit', (code, signal) =>
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started }),
    );
  });
  return {
    child,
    result,
    stdoutHas: (text) => has(text, false),
    stderrHas: (text) => has(text, true),
  };
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return start(args, env).result;
}

/** The JSON events of `--log json` on stderr. */
function events(stderr: string): Array<Record<string, unknown> & { event: string; t: number }> {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Node code for `node -e`: a child that writes what happens to it into a file. */
function recorder(file: string, onTerm: string): string {
  return `
    const fs = require('node:fs');
    process.on('SIGTERM', () => { fs.appendFileSync(${JSON.stringify(file)}, 'TERM\\n'); ${onTerm} });
    fs.writeFileSync(${JSON.stringify(file)}, 'START ' + process.pid + '\\n');
    console.log('ready');
    setInterval(() => {}, 1000);
  `;
}

let ensemble: Ensemble;
let env: NodeJS.ProcessEnv;
let redlock: Redlock;
let dir: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  ensemble = await startEnsemble({ size: 3 });
  env = { QUORUMLOCK_NODES: ensemble.urls.join(',') };
  redlock = new Redlock(ensemble.urls);
  dir = mkdtempSync(join(tmpdir(), 'quorumlock-cli-'));
});

afterAll(async () => {
  await redlock?.close();
  await ensemble?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('quorumlock run', () => {
  it("passes the child's exit code through", async () => {
    const r = await cli(['run', 'exit-code', '--', NODE, '-e', 'process.exit(7)'], env);
    expect(r.code).toBe(7);
    const ok = await cli(['run', 'exit-code', '--', NODE, '-e', 'process.exit(0)'], env);
    expect(ok.code).toBe(0);
  });

  it('gives the child QUORUMLOCK_RESOURCE and the lock fencing token as QUORUMLOCK_FENCE', async () => {
    const print =
      'console.log(process.env.QUORUMLOCK_RESOURCE + " " + process.env.QUORUMLOCK_FENCE)';
    const first = await cli(['run', 'env-vars', '--', NODE, '-e', print], env);
    const second = await cli(
      ['run', '--nodes', ensemble.urls.join(','), 'env-vars', '--', NODE, '-e', print],
      {},
    );
    expect(first.code).toBe(0);
    const [resource, fence] = first.stdout.trim().split(' ');
    expect(resource).toBe('env-vars');
    expect(Number.isSafeInteger(Number(fence)) && Number(fence) > 0).toBe(true);
    // The next holder gets a higher token.
    expect(Number(second.stdout.trim().split(' ')[1])).toBeGreaterThan(Number(fence));
    // The lock was released: it can be taken at once.
    const lock = await redlock.tryAcquire('env-vars');
    expect(lock).not.toBeNull();
    await lock!.release();
  });

  it('exits 128 + N when the child dies of signal N', async () => {
    const r = await cli(['run', 'signal-death', '--', 'sh', '-c', 'kill -TERM $$'], env);
    expect(r.code).toBe(128 + 15);
  });

  it('exits 127 without a lock left behind when the command does not exist', async () => {
    const r = await cli(['run', 'no-such', '--', 'quorumlock-no-such-command-here'], env);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/not found/);
    const state = await redlock.inspect('no-such');
    expect(state.holder).toBeNull();
  });

  it('exits 75 at once, without running the command, when another holds the lock and --wait is 0', async () => {
    const marker = join(dir, 'ran-75');
    const held = await redlock.acquire('held-elsewhere', { ttl: 30_000 });
    try {
      const r = await cli(['run', '--wait', '0', 'held-elsewhere', '--', 'touch', marker], env);
      expect(r.code).toBe(75);
      expect(r.stderr).toMatch(/held by another holder/);
      expect(existsSync(marker)).toBe(false);
      // It did not wait for the holder's 30 s lock to expire.
      expect(r.ms).toBeLessThan(15_000);
      const waited = await cli(
        ['run', '--wait', '300ms', 'held-elsewhere', '--', 'touch', marker],
        env,
      );
      expect(waited.code).toBe(75);
      expect(waited.ms).toBeGreaterThanOrEqual(300);
      expect(existsSync(marker)).toBe(false);
    } finally {
      await held.release();
    }
  });

  it('exits with --conflict-exit-code instead of 75 when another holds the lock, never the command', async () => {
    const marker = join(dir, 'ran-conflict');
    const held = await redlock.acquire('conflict-code', { ttl: 30_000 });
    try {
      const args = ['--conflict-exit-code', '3', '--log', 'json'];
      const now = await cli(['run', ...args, 'conflict-code', '--', 'touch', marker], env);
      expect(now.code).toBe(3);
      expect(events(now.stderr)).toContainEqual(
        expect.objectContaining({ event: 'busy', exit: 3 }),
      );
      const waited = await cli(
        ['run', ...args, '--wait', '300ms', 'conflict-code', '--', 'touch', marker],
        env,
      );
      expect(waited.code).toBe(3);
      expect(events(waited.stderr).at(-1)).toMatchObject({ event: 'error', exit: 3 });
      expect(existsSync(marker)).toBe(false);
    } finally {
      await held.release();
    }
    // The command's own codes pass through unchanged, 75 included.
    const own = await cli(
      ['run', '--conflict-exit-code', '3', 'conflict-code', '--', NODE, '-e', 'process.exit(75)'],
      env,
    );
    expect(own.code).toBe(75);
  });

  it("carries quorumlock's own pid on every JSON log line and the command's as childPid", async () => {
    const running = start(
      ['run', '--log', 'json', 'log-pids', '--', NODE, '-e', 'console.log(process.pid)'],
      env,
    );
    const r = await running.result;
    expect(r.code).toBe(0);
    const log = events(r.stderr);
    expect(log.length).toBeGreaterThan(3);
    for (const e of log) expect(e.pid).toBe(running.child.pid);
    const childPid = Number(r.stdout.trim());
    expect(childPid).not.toBe(running.child.pid);
    expect(log.find((e) => e.event === 'started')).toMatchObject({ childPid });
    expect(log.find((e) => e.event === 'exited')).toMatchObject({ childPid, code: 0 });
  });

  it('waits with --wait and runs the command once the holder releases', async () => {
    const held = await redlock.acquire('handed-over', { ttl: 30_000 });
    const running = start(
      ['run', '--wait', '20s', 'handed-over', '--', NODE, '-e', 'console.log("ran")'],
      env,
    );
    setTimeout(() => void held.release(), 300);
    const r = await running.result;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ran');
  });

  it('gives up waiting on SIGINT with 130, never running the command', async () => {
    const held = await redlock.acquire('interrupted', { ttl: 30_000 });
    try {
      const running = start(
        [
          'run',
          '--wait',
          'forever',
          '--log',
          'json',
          'interrupted',
          '--',
          NODE,
          '-e',
          'console.log("ran")',
        ],
        env,
      );
      // Once it is waiting (its handlers are installed), interrupt it.
      await running.stderrHas('"event":"acquiring"');
      await new Promise((resolve) => setTimeout(resolve, 200));
      running.child.kill('SIGINT');
      const r = await running.result;
      expect(r.code).toBe(130);
      expect(r.stdout).not.toContain('ran');
    } finally {
      await held.release();
    }
  });

  it('forwards SIGTERM to the child and exits with its code, releasing the lock', async () => {
    const running = start(
      [
        'run',
        'forwarded',
        '--',
        NODE,
        '-e',
        'process.on("SIGTERM", () => process.exit(42)); console.log("ready"); setInterval(() => {}, 1000)',
      ],
      env,
    );
    await running.stdoutHas('ready');
    running.child.kill('SIGTERM');
    const r = await running.result;
    expect(r.code).toBe(42);
    expect((await redlock.inspect('forwarded')).holder).toBeNull();
  });

  it('exits 64 on a usage error, before touching any node', async () => {
    const bad = await cli(['run', '--ttl', 'soon', 'job', '--', 'true'], env);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/--ttl: "soon" is not a duration/);
    const noNodes = await cli(['run', 'job', '--', 'true'], {});
    expect(noNodes.code).toBe(64);
    expect(noNodes.stderr).toMatch(/QUORUMLOCK_NODES/);
  });

  it('lists every exit code in --help', async () => {
    const r = await cli(['run', '--help'], {});
    expect(r.code).toBe(0);
    for (const code of ['64', '69', '75', '76'])
      expect(r.stdout).toMatch(new RegExp(`^  ${code}\\b`, 'm'));
  });

  it('exits 69 without running the command when a majority of nodes is down', async () => {
    const marker = join(dir, 'ran-69');
    await Promise.all([ensemble.nodes[1]!.stop(), ensemble.nodes[2]!.stop()]);
    try {
      const once = await cli(['run', 'majority-down', '--', 'touch', marker], env);
      expect(once.code).toBe(69);
      expect(once.stderr).toMatch(/quorum/);
      const waited = await cli(
        ['run', '--wait', '600ms', 'majority-down', '--', 'touch', marker],
        env,
      );
      expect(waited.code).toBe(69);
      expect(existsSync(marker)).toBe(false);
    } finally {
      await Promise.all([
        ensemble.nodes[1]!.restart({ keepData: true }),
        ensemble.nodes[2]!.restart({ keepData: true }),
      ]);
    }
  });

  it('stops the child with SIGTERM, then SIGKILL after the grace, before the validity ends when a majority pauses, and exits 76', async () => {
    const file = join(dir, 'paused-majority');
    // The child ignores SIGTERM, so only SIGKILL can end it.
    const running = start(
      [
        'run',
        '--ttl',
        '4s',
        '--grace',
        '800ms',
        '--log',
        'json',
        'paused-majority',
        '--',
        NODE,
        '-e',
        recorder(file, ''),
      ],
      env,
    );
    await running.stdoutHas('ready');
    const childPid = Number(readFileSync(file, 'utf8').split(' ')[1]);
    ensemble.nodes[0]!.pause();
    ensemble.nodes[1]!.pause();
    let r: Result;
    try {
      r = await running.result;
    } finally {
      ensemble.nodes[0]!.resume();
      ensemble.nodes[1]!.resume();
    }
    expect(r.code).toBe(76);
    expect(readFileSync(file, 'utf8')).toContain('TERM');
    expect(isAlive(childPid)).toBe(false);

    const log = events(r.stderr);
    const lastValidity = Math.max(
      ...log
        .filter((e) => e.event === 'acquired' || e.event === 'extended')
        .map((e) => Number(e.validUntil)),
    );
    const term = log.find((e) => e.event === 'terminating')!;
    const kill = log.find((e) => e.event === 'killing')!;
    const exited = log.find((e) => e.event === 'exited')!;
    expect(term.signal).toBe('SIGTERM');
    expect(kill.t).toBeGreaterThanOrEqual(term.t);
    expect(kill.t).toBeLessThanOrEqual(lastValidity);
    expect(exited.signal).toBe('SIGKILL');
    expect(log.at(-1)).toMatchObject({ event: 'exit', code: 76 });
  });
});

describe('quorumlock', () => {
  it('lists the exit codes in the help of every command', async () => {
    for (const args of [
      ['--help'],
      ['help', 'run'],
      ['status', '--help'],
      ['doctor', '--help'],
      ['bench', '--help'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      for (const code of ['64', '69', '75', '76']) {
        expect(r.stdout, `${args.join(' ')} lists ${code}`).toMatch(
          new RegExp(`^  ${code}\\b`, 'm'),
        );
      }
    }
  });

  it('exits 64 for an unknown or missing command, and prints its version', async () => {
    const unknown = await cli(['lock']);
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toMatch(/unknown command "lock"/);
    expect((await cli([])).code).toBe(64);
    const version = await cli(['--version']);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(version.stdout.trim()).toBe(pkg.version);
  });
});
