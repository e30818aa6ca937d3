/** The installed package's version, as its package.json says. */
import { readFileSync } from 'node:fs';

/** `version` from the package.json two levels up (from dist/cli/ or src/cli/); `unknown` when unreadable. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    return String(pkg.version);
  } catch {
    return 'unknown';
  }
}
