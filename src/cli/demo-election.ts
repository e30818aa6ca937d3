/**
 * The demo's leader-election act: hosts campaign to be the scheduler with
 * `redlock.leader` (demo-leader.ts) while the leader is crashed, frozen past
 * its validity (its late heartbeat is refused by the fenced store) and finally
 * asked to resign. Every term is recorded for the history checker.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Hold } from './demo-history.js';
import { parseEvent, short, type Timeline } from './demo-timeline.js';

const LEADER_JS = fileURLToPath(new URL('./demo-leader.js', import.meta.url));

/** What the election act needs to know. */
export interface ElectionSettings {
  readonly hosts: readonly string[];
  readonly nodes: readonly string[];
  readonly storeUrl: string;
  /** Leadership lock ttl, ms. */
  readonly ttl: number;
  /** Heartbeat interval, ms. */
  readonly tick: number;
  readonly nodeTimeout: number;
}

/** What happened, for the summary. */
export interface ElectionResult {
  readonly terms: Hold[];
  readonly rejected: number;
  readonly faults: string[];
  /** ms from a resigning leader's stop to the next election, when seen. */
  readonly handoverMs: number | undefined;
  /** ms from the leader's crash to the next election, when seen. */
  readonly crashTakeoverMs: number | undefined;
}

interface Term {
  fence: number;
  acquiredAt: number;
  validUntil: number;
  endedAt: number | undefined;
  beats: number;
}

interface Candidate {
  readonly host: string;
  readonly process: ChildProcess;
  readonly terms: Term[];
  exited: Promise<void>;
  gone: boolean;
}

type Event = Record<string, unknown> & { event: string; t: number };
type Listener = (candidate: Candidate, event: Event) => void;

/** Runs the election act; resolves when every candidate has exited. */
export class Election {
  readonly #s: ElectionSettings;
  readonly #timeline: Timeline;
  readonly #candidates: Candidate[] = [];
  readonly #listeners = new Set<Listener>();
  readonly #faults: string[] = [];
  #rejected = 0;
  #leader: Candidate | undefined;
  #previous: { candidate: Candidate; how: string } | undefined;

  constructor(settings: ElectionSettings, timeline: Timeline) {
    this.#s = settings;
    this.#timeline = timeline;
  }

  async run(): Promise<ElectionResult> {
    const s = this.#s;
    const patience = s.ttl * 8;
    this.#timeline.log(
      '',
      `leader election: ${s.hosts.join(', ')} campaign to be the scheduler (redlock.leader, ttl ${s.ttl} ms); ` +
        'the leader writes a heartbeat through the fencing guard',
    );
    for (const host of s.hosts) this.#spawn(host);
    let crashTakeoverMs: number | undefined;
    let handoverMs: number | undefined;
    try {
      // 1. The leader crashes: the next is elected once its lock expires.
      const first = await this.#elected(patience);
      await this.#beats(first, 3, patience);
      const crashedAt = Date.now();
      this.#previous = { candidate: first, how: 'expired after its crash' };
      first.gone = true;
      first.process.kill('SIGKILL');
      this.#faults.push('the leader crashed');
      this.#timeline.fault(`${first.host} (the leader) crashed with SIGKILL`);
      const second = await this.#elected(patience);
      crashTakeoverMs = Date.now() - crashedAt;

      // 2. The leader freezes past its validity; a new one is elected; the old one wakes and writes.
      await this.#beats(second, 3, patience);
      second.process.kill('SIGSTOP');
      this.#previous = { candidate: second, how: 'expired while it was frozen' };
      this.#faults.push('the leader frozen past its validity');
      this.#timeline.fault(
        `${second.host} (the leader) frozen with SIGSTOP, holding fence ${short(lastTerm(second).fence)}`,
      );
      const third = await this.#elected(patience);
      await this.#beats(third, 1, patience);
      this.#timeline.fault(`${second.host} thawed: its scheduler loop wakes up mid-term`);
      const lost = this.#waitFor((c, e) => c === second && e.event === 'lost', patience);
      second.process.kill('SIGCONT');
      await lost;

      // 3. The leader resigns (SIGTERM → leader.stop()): the next is elected at once.
      await this.#beats(third, 2, patience);
      this.#previous = { candidate: third, how: 'was released by its resignation' };
      const resignedAt = Date.now();
      this.#timeline.log(third.host, 'asked to stop (SIGTERM): resigns leadership');
      third.process.kill('SIGTERM');
      await this.#elected(patience);
      handoverMs = Date.now() - resignedAt;
      await this.#beats(this.#leader!, 2, patience);
    } catch (err) {
      this.#timeline.log('', `election act cut short: ${(err as Error).message}`);
    } finally {
      this.#previous = undefined;
      await this.#stopAll();
    }
    const terms = this.#candidates.flatMap((c) =>
      c.terms.map((t, i) => ({
        holder: `${c.host}/term ${i + 1}`,
        fence: t.fence,
        acquiredAt: t.acquiredAt,
        validUntil: t.validUntil,
        endedAt: t.endedAt,
      })),
    );
    return { terms, rejected: this.#rejected, faults: this.#faults, handoverMs, crashTakeoverMs };
  }

  #spawn(host: string): void {
    const s = this.#s;
    const child = spawn(process.execPath, [LEADER_JS], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        QUORUMLOCK_NODES: s.nodes.join(','),
        DEMO_STORE_URL: s.storeUrl,
        DEMO_HOST: host,
        DEMO_TTL_MS: String(s.ttl),
        DEMO_TICK_MS: String(s.tick),
        DEMO_NODE_TIMEOUT_MS: String(s.nodeTimeout),
      },
    });
    const candidate: Candidate = {
      host,
      process: child,
      terms: [],
      exited: Promise.resolve(),
      gone: false,
    };
    candidate.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.#candidates.push(candidate);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = parseEvent(line) as Event | undefined;
      if (e) this.#onEvent(candidate, e);
    });
  }

  #onEvent(c: Candidate, e: Event): void {
    const term = c.terms.at(-1);
    switch (e.event) {
      case 'elected': {
        const fence = Number(e.fence);
        c.terms.push({
          fence,
          acquiredAt: e.t,
          validUntil: Number(e.validUntil),
          endedAt: undefined,
          beats: 0,
        });
        this.#leader = c;
        const why = this.#previous
          ? ` (${this.#previous.candidate.host}'s lock ${this.#previous.how})`
          : '';
        this.#timeline.log(
          c.host,
          `ELECTED scheduler, fence ${short(fence)}, valid ${(Number(e.remaining) / 1000).toFixed(2)} s${why}`,
        );
        break;
      }
      case 'extended':
        if (term) term.validUntil = Number(e.validUntil);
        break;
      case 'beat':
        if (term) term.beats++;
        break;
      case 'rejected':
        this.#rejected++;
        this.#timeline.log(
          c.host,
          `STALE HEARTBEAT REJECTED by the store: fence ${short(Number(e.token))} < highest seen ${short(Number(e.highest))}`,
        );
        break;
      case 'stepped-down':
        if (term) term.endedAt ??= e.t;
        break;
      case 'lost':
        this.#timeline.log(
          c.host,
          `no longer leader after ${term?.beats ?? 0} heartbeats: ${String(e.reason).replace(/^lock on "[^"]+" is no longer held: /, '')}`,
        );
        break;
      case 'resigned':
        this.#timeline.log(c.host, `resigned; stop() took ${e.tookMs} ms`);
        break;
      case 'error':
        this.#timeline.log(c.host, `error: ${e.message}`);
        break;
    }
    for (const listener of this.#listeners) listener(c, e);
  }

  /** Resolves with the next candidate elected. */
  #elected(timeoutMs: number): Promise<Candidate> {
    return this.#waitFor((_, e) => e.event === 'elected', timeoutMs);
  }

  /** Resolves once `c` has written `n` more heartbeats in its current term. */
  async #beats(c: Candidate, n: number, timeoutMs: number): Promise<void> {
    let seen = 0;
    await this.#waitFor((who, e) => who === c && e.event === 'beat' && ++seen >= n, timeoutMs);
  }

  #waitFor(match: (c: Candidate, e: Event) => boolean, timeoutMs: number): Promise<Candidate> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(listener);
        reject(new Error(`nothing happened within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener: Listener = (c, e) => {
        if (!match(c, e)) return;
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(c);
      };
      this.#listeners.add(listener);
    });
  }

  /** Asks every candidate still running to resign, then makes sure each has exited. */
  async #stopAll(): Promise<void> {
    for (const c of this.#candidates) {
      if (c.gone) continue;
      c.process.kill('SIGCONT');
      c.process.kill('SIGTERM');
    }
    const all = Promise.all(this.#candidates.map((c) => c.exited));
    const timer = setTimeout(() => {
      for (const c of this.#candidates) c.process.kill('SIGKILL');
    }, 5000);
    await all;
    clearTimeout(timer);
  }
}

function lastTerm(c: Candidate): Term {
  return c.terms.at(-1)!;
}
