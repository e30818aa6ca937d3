// One progress line on stderr: rewritten in place on a terminal, one line per
// step otherwise (so CI logs stay readable). Never touches stdout, which holds
// the Markdown report.
import { performance } from 'node:perf_hooks';

/** A progress line over a known number of steps. */
export class Progress {
  #start = performance.now();
  #steps;
  #done = 0;
  #label = '';
  #detail = '';
  #lastDraw = 0;
  #tty = Boolean(process.stderr.isTTY);
  #quiet;

  constructor(steps, { quiet = false } = {}) {
    this.#steps = steps;
    this.#quiet = quiet;
  }

  /** Starts a step; `label` names the scenario, repetition and contender. */
  step(label) {
    this.#label = label;
    this.#detail = '';
    this.#draw(true);
  }

  /** Updates the live detail of the current step (rate-limited). */
  detail(text) {
    this.#detail = text;
    this.#draw(false);
  }

  /** Marks the current step finished. */
  finish() {
    this.#done++;
  }

  /** A free-form note on its own line. */
  note(text) {
    if (this.#quiet) return;
    if (this.#tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${text}\n`);
    this.#draw(true);
  }

  /** Clears the line at the end. */
  end() {
    if (this.#tty && !this.#quiet) process.stderr.write('\r\x1b[K');
  }

  #draw(force) {
    if (this.#quiet) return;
    const now = performance.now();
    if (!force && (!this.#tty || now - this.#lastDraw < 200)) return;
    this.#lastDraw = now;
    const elapsed = (now - this.#start) / 1000;
    const pct = this.#steps ? Math.floor((100 * this.#done) / this.#steps) : 0;
    const line = `[${elapsed.toFixed(0).padStart(4)}s ${String(pct).padStart(3)}%] ${this.#label}${
      this.#detail ? ` · ${this.#detail}` : ''
    }`;
    if (this.#tty)
      process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
    else if (force) process.stderr.write(`${line}\n`);
  }
}
