/**
 * `quorumlock bench` (the built command) when it cannot measure: unreachable
 * nodes and bad options. The measurements themselves are checked from the
 * packed package in test/package/packed.test.ts.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const run = promisify(execFile);

async function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, 'bench', ...args], { env: { PATH: process.env.PATH } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('quorumlock bench', () => {
  it('exits 69 naming the unreachable nodes when fewer than a quorum answer', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const r = await bench(['--quick', '--nodes', `redis://127.0.0.1:${a},redis://127.0.0.1:${b}`]);
    expect(r.code).toBe(69);
    expect(r.stderr).toContain(`127.0.0.1:${a} is unreachable`);
    expect(r.stderr).toMatch(/only 0 of 2 nodes answered; a lock needs 2/);
    expect(r.stdout).toBe('');
  });

  it('exits 64 for a bad option value, naming the option', async () => {
    const cases = [
      [['--samples', '0'], /--samples: "0" is not a positive whole number/],
      [['--duration', '0'], /--duration must be more than 0/],
      [['--ttl', '5ms'], /--ttl must be at least 100ms/],
      [['--hold', 'soon'], /--hold: "soon" is not a duration/],
      [['extra'], /unexpected argument "extra"/],
    ] as const;
    const results = await Promise.all(
      cases.map(([args]) => bench([...args, '--nodes', 'redis://127.0.0.1:1'])),
    );
    cases.forEach(([args, message], i) => {
      expect(results[i]!.code, args.join(' ')).toBe(64);
      expect(results[i]!.stderr).toMatch(message);
    });
  });
});
