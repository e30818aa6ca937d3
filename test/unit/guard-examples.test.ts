import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const example = fileURLToPath(new URL('../../docs/examples/fencing-sqlite.mjs', import.meta.url));

describe('docs/examples/fencing-sqlite.mjs', () => {
  it('runs as documented and rejects every late write of the stale holder', async () => {
    const { stdout } = await run(process.execPath, [example], { timeout: 30_000 });
    const lines = stdout.trim().split('\n');
    expect(lines).toEqual([
      'pattern 1 (fence column): B token 1718000000000002 accepted',
      'pattern 1 (fence column): A token 1718000000000001 rejected (a newer holder has written)',
      'pattern 2 (token table):  A token 1718000000000001 accepted',
      'pattern 2 (token table):  B token 1718000000000002 accepted',
      'pattern 2 (token table):  A token 1718000000000001 rejected (a newer holder has written)',
      'ok: every late write from the stale holder was rejected',
    ]);
  });
});
