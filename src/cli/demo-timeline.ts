/**
 * How the demo prints: a live timeline of who did what, seconds since the
 * start, and the summary's rows.
 */

/** Prints timeline lines, timed from its creation. */
export class Timeline {
  readonly #started = Date.now();

  /** One event of `who` (a host, FAULT, or '' for the narrator). */
  log(who: string, text: string): void {
    const seconds = ((Date.now() - this.#started) / 1000).toFixed(1).padStart(6);
    out(`${seconds}s  ${who.padEnd(7)} ${text}`);
  }

  /** An injected fault. */
  fault(text: string): void {
    this.log('FAULT', text);
  }
}

/** A fencing token by its last 6 digits: tokens are µs-scale numbers, the tail is what changes. */
export function short(fence: number): string {
  return `…${String(fence).slice(-6)}`;
}

/** One JSON event line from a child, or undefined for anything else. */
export function parseEvent(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Writes one line to stdout. */
export function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** One summary row. */
export function row(label: string, value: string): void {
  out(`  ${label.padEnd(22)} ${value}`);
}
