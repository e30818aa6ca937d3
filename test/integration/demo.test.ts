/**
 * The demo (`npm run demo`, dist/cli/demo.js) runs to the end by itself, with
 * every fault injected, and its summary, computed from the recorded history,
 * shows no overlapping holders.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../../dist/cli/demo.js', import.meta.url));

function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('npm run demo', () => {
  it('runs to the end with every fault injected and reports zero overlapping holders', async () => {
    if (!existsSync(DEMO)) throw new Error(`${DEMO} is missing: run \`npm run build\` first`);
    const { code, stdout, stderr } = await runDemo(['--duration', '24s']);
    expect(stderr).toBe('');
    expect(code).toBe(0);

    const summary = stdout.slice(stdout.indexOf('summary (computed from the recorded history'));
    const [, holds, terms] =
      /recorded history: (\d+) holds of nightly-job, (\d+) terms/.exec(summary) ?? [];
    expect(Number(holds)).toBeGreaterThanOrEqual(10);
    expect(Number(terms)).toBeGreaterThanOrEqual(4);
    expect(summary).toMatch(/overlapping holders\s+0\n/);
    expect(summary).toMatch(/fence tokens\s+strictly increasing/);
    expect(summary).toMatch(/nights completed\s+5 of 5, 10 items each, every item written once/);
    expect(summary).toMatch(/stale writes rejected\s+\d+ \(1 by a job, /);
    expect(summary).toMatch(/result: OK/);

    // The faults really happened, in the live timeline.
    expect(stdout).toMatch(/FAULT\s+node 2 .* paused/);
    expect(stdout).toMatch(/FAULT\s+node 3 .* killed/);
    expect(stdout).toMatch(/FAULT\s+node 3 restarted/);
    expect(stdout).toMatch(/FAULT\s+host-\d frozen/);
    expect(stdout).toMatch(/STALE WRITE REJECTED by the store/);
    expect(stdout).toMatch(/quorumlock exits 76/);
    expect(stdout).toMatch(/FAULT\s+host-\d crashed/);
    expect(stdout).toMatch(/lock expired after its crash/);
    // The leader election act: a crash, a freeze and a resignation, each followed by a new leader.
    expect(stdout).toMatch(/FAULT\s+host-\d \(the leader\) crashed/);
    expect(stdout).toMatch(/ELECTED scheduler, .*lock expired after its crash/);
    expect(stdout).toMatch(/ELECTED scheduler, .*lock expired while it was frozen/);
    expect(stdout).toMatch(/ELECTED scheduler, .*lock was released by its resignation/);
    expect(summary).toMatch(/new leader\s+[\d.]+ s after a crash/);
  }, 120_000);
});
