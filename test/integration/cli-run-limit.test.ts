/**
 * `quorumlock run --limit N`: the command runs under one of N permits of a
 * semaphore, so at most N copies run at once across independent invocations.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { copyDist } from '../harness/dist-copy.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
let dist: string;
let dir: string;

/** Runs the built CLI (a private copy of dist/); resolves with its exit code and stderr. */
function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [join(dist, 'cli/main.js'), ...args], {
    env: { ...process.env, QUORUMLOCK_NODES: ensemble.urls.join(',') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

beforeAll(async () => {
  dist = await copyDist('test-dist-cli-limit');
  ensemble = await startEnsemble({ size: 3 });
  dir = mkdtempSync(join(tmpdir(), 'quorumlock-limit-'));
});
afterAll(async () => {
  await ensemble?.stop();
  rmSync(dist, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

describe('run --limit', () => {
  it('runs at most N copies of the command at once', async () => {
    const log = join(dir, 'log');
    // Each copy appends "+" when it starts and "-" when it ends: the file is the true timeline.
    const script = `echo + >> ${log}; sleep 0.2; echo - >> ${log}`;
    const runs = await Promise.all(
      Array.from({ length: 5 }, () =>
        cli([
          'run',
          '--limit',
          '2',
          '--wait',
          'forever',
          '--ttl',
          '5s',
          'encoders',
          '--',
          'sh',
          '-c',
          script,
        ]),
      ),
    );
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0, 0]);
    let running = 0;
    let most = 0;
    for (const line of readFileSync(log, 'utf8').trim().split('\n')) {
      running += line === '+' ? 1 : -1;
      most = Math.max(most, running);
    }
    expect(running).toBe(0);
    expect(most).toBeLessThanOrEqual(2);
  });

  it('exits 75 without running the command when every permit is held and --wait is 0', async () => {
    // The holder runs until the test lets it end.
    const stop = join(dir, 'stop');
    const holder = cli([
      'run',
      '--limit',
      '1',
      'busy',
      '--',
      'sh',
      '-c',
      `while [ ! -e ${stop} ]; do sleep 0.05; done`,
    ]);
    // The holder is in once its permit is on the nodes.
    await vi.waitFor(
      async () => expect(await ensemble.keys('quorumlock:{busy}:semaphore')).toHaveLength(3),
      { timeout: 20_000, interval: 20 },
    );
    const marker = join(dir, 'never');
    const second = await cli(['run', '--limit', '1', 'busy', '--', 'touch', marker]);
    expect(second.code).toBe(75);
    expect(() => readFileSync(marker)).toThrow();
    writeFileSync(stop, '');
    expect((await holder).code).toBe(0);
  });

  it('rejects a limit that is not a positive whole number with exit 64', async () => {
    const runs = await Promise.all(
      ['0', '-1', '2.5', 'many'].map((limit) => cli(['run', '--limit', limit, 'x', '--', 'true'])),
    );
    for (const { code, stderr } of runs) {
      expect(code).toBe(64);
      expect(stderr).toContain('--limit');
    }
  });
});
