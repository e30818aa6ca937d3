/**
 * A private copy of dist/ for worker processes: a build that rewrites dist/
 * while a test runs must not hand a worker half-written modules.
 */
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** Copies dist/ (ES modules and scripts) under .tmp/ once it loads; returns the copy's path. */
export async function copyDist(tag: string): Promise<string> {
  const from = fileURLToPath(new URL('../../dist/', import.meta.url));
  if (!existsSync(`${from}index.js`))
    throw new Error('workers import dist/: run `npm run build` first');
  for (let attempt = 1; ; attempt++) {
    const to = fileURLToPath(
      new URL(`../../.tmp/${tag}-${process.pid}-${attempt}/`, import.meta.url),
    );
    mkdirSync(to, { recursive: true });
    cpSync(from, to, { recursive: true, filter: (src) => !src.includes('/dist/cjs') });
    try {
      await import(`${to}index.js`);
      return to;
    } catch (err) {
      rmSync(to, { recursive: true, force: true });
      if (attempt >= 5) throw err;
      await sleep(2_000);
    }
  }
}
