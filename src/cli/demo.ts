/**
 * `npm run demo`: five local Redis masters, several "hosts" whose cron starts
 * the same nightly job every night through `quorumlock run`, and faults
 * injected while they compete: a node paused, a node killed and restarted, the
 * holding host frozen past its lock's validity (its late write is refused by
 * the fenced store), the holding host crashed. A live timeline shows who holds
 * the lock and with which token; the summary is computed from the recorded
 * history, overlapping holders included.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { fenceKey, lockKey } from '../redis/keys.js';
import { parseCommandArgs, parseDuration, parsePositiveInt, UsageError } from './args.js';
import { Election, type ElectionResult } from './demo-election.js';
import { checkHistory, type Hold, windowEnd } from './demo-history.js';
import { FENCED_OUT, nightKey, SCHEDULER } from './demo-store.js';
import { out, parseEvent, row, short, Timeline } from './demo-timeline.js';
import { type LocalEnsemble, startLocalEnsemble } from './ensemble.js';
import { ExitCode } from './exit.js';

const HELP = `Usage: node dist/cli/demo.js [--duration 60s] [--hosts 4]

Starts five local redis-server masters (redis-server must be on PATH) and a
fenced store. Every night, cron on every host runs a nightly job through
\`quorumlock run\`, while faults are injected: a node paused, a node killed and
restarted, the holding host frozen past its lock's validity, the holding host
crashed. Then three hosts elect a scheduler with leader election, and the
leader is crashed, frozen and asked to resign. Prints a live timeline and a
summary computed from the recorded history, and exits 0 when that history
shows no overlapping holders and no lost work.

Options:
  --duration DURATION   about how long it runs, 20s at least (default 60s);
                        a night never ends before its work, so a slow machine
                        stretches it
  --hosts N             hosts competing for the job, 2 to 8 (default 4)
  -h, --help            show this help`;

const RESOURCE = 'nightly-job';
const NIGHTS = 5;
const ITEMS = 10;
/** The night of each fault. */
const PAUSE_NIGHT = 2;
const KILL_NIGHT = 3;
const FREEZE_NIGHT = 4;
const CRASH_NIGHT = 5;
const MAIN_JS = fileURLToPath(new URL('./main.js', import.meta.url));
const JOB_JS = fileURLToPath(new URL('./demo-job.js', import.meta.url));

/** Timings derived from --duration, in ms. */
interface Timing {
  readonly night: number;
  readonly step: number;
  readonly ttl: number;
  readonly grace: number;
  readonly wait: number;
  readonly nodeTimeout: number;
}

function timing(durationMs: number): Timing {
  // The nights take four fifths of the time, the leader election the rest.
  const night = Math.floor((durationMs * 0.8) / NIGHTS);
  const ttl = Math.min(3000, Math.max(1500, Math.round(night / 4)));
  return {
    night,
    step: Math.round(night / 40),
    ttl,
    grace: Math.round(ttl / 5),
    // Generous: the waiters of a night must outlast a crashed holder's ttl on a busy machine.
    wait: night * 2,
    // Fixed rather than learned: each short-lived process would start from the cold-start
    // deadline and learn on a loaded machine; the demo wants the same deadline every night.
    nodeTimeout: Math.round(ttl / 8),
  };
}

/** One `quorumlock run` invocation by one host for one night. */
interface Run {
  readonly host: string;
  readonly night: number;
  readonly process: ChildProcess;
  childPid?: number;
  fence?: number;
  acquiredAt?: number;
  validUntil?: number;
  endedAt?: number;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  items: number[];
  frozen: boolean;
  crashed: boolean;
  exited: Promise<void>;
}

class Demo {
  readonly #t: Timing;
  readonly #hosts: string[];
  readonly #timeline = new Timeline();
  #election: ElectionResult | undefined;
  readonly #runs: Run[] = [];
  readonly #itemWrites = new Map<string, number>();
  readonly #rejected: { run: Run; item: number | null; token: number; highest: number }[] = [];
  readonly #faults: string[] = [];
  #ensemble!: LocalEnsemble;
  #store!: LocalEnsemble;
  #holder: Run | undefined;
  /** Set by the freeze scenario: resolves when another host writes an item after the freeze. */
  #onForeignItem: ((run: Run) => void) | undefined;
  readonly #faultNights = new Set<number>();
  readonly #pendingFaults: Promise<void>[] = [];

  constructor(t: Timing, hosts: number) {
    this.#t = t;
    this.#hosts = Array.from({ length: hosts }, (_, i) => `host-${i + 1}`);
  }

  async run(): Promise<number> {
    this.#ensemble = await startLocalEnsemble({ size: 5 });
    this.#store = await startLocalEnsemble({ size: 1 });
    const cleanup = () => this.#killHosts();
    process.on('exit', cleanup);
    try {
      this.#intro();
      for (let night = 1; night <= NIGHTS; night++) await this.#night(night);
      await Promise.all(this.#runs.map((r) => r.exited));
      const t = this.#t;
      this.#election = await new Election(
        {
          hosts: this.#hosts.slice(0, 3),
          nodes: this.#ensemble.urls,
          storeUrl: this.#store.urls[0]!,
          ttl: t.ttl,
          tick: t.step * 2,
          nodeTimeout: t.nodeTimeout,
        },
        this.#timeline,
      ).run();
      return await this.#summary();
    } finally {
      this.#killHosts();
      process.off('exit', cleanup);
      await this.#ensemble.stop();
      await this.#store.stop();
    }
  }

  #intro(): void {
    const ports = this.#ensemble.servers.map((s) => s.port).join(', ');
    const t = this.#t;
    out(
      `quorumlock demo: ${NIGHTS} nights of a nightly job on ${this.#hosts.length} hosts, then a leader election`,
    );
    out(`  Redis masters  127.0.0.1 ports ${ports} (quorum 3 of 5)`);
    out(`  fenced store   127.0.0.1 port ${this.#store.servers[0]!.port}`);
    out(`  every night, cron on every host runs:`);
    out(
      `    quorumlock run --ttl ${t.ttl}ms --wait ${t.wait}ms --grace ${t.grace}ms --node-timeout ${t.nodeTimeout}ms \\`,
    );
    out(`        ${RESOURCE} -- node demo-job.js <night>`);
    out(
      `  the job does ${ITEMS} items of ${t.step} ms, resuming where the last holder stopped, and writes`,
    );
    out(`  each through the store's fencing guard with its token (QUORUMLOCK_FENCE)`);
    out(`  then three hosts elect a scheduler with leader election (redlock.leader)`);
    out(`  fences are shown by their last 6 digits; times are seconds since the start`);
    out('');
  }

  async #night(night: number): Promise<void> {
    const nightStart = Date.now();
    const t = this.#t;
    this.#log('', `night ${night} begins: cron fires on ${this.#hosts.join(', ')}`);
    const runs: Run[] = [];
    for (const host of this.#hosts) {
      runs.push(this.#spawn(host, night));
      await sleep(Math.random() * 100);
    }
    // A night ends when its runs and faults are over, and lasts at least its share of the duration.
    await Promise.all(runs.map((r) => r.exited));
    await Promise.all(this.#pendingFaults);
    await sleep(Math.max(0, nightStart + t.night - Date.now()));
  }

  /** Pauses node 2 while a holder works: renewals and waiters carry on with 4 of 5. */
  async #pauseNode(): Promise<void> {
    const node = this.#ensemble.servers[1]!;
    node.pause();
    this.#faults.push('a node paused');
    this.#fault(`node 2 (:${node.port}) paused with SIGSTOP: it answers nothing`);
    await sleep(this.#t.night * 0.35);
    node.resume();
    this.#fault('node 2 resumed');
  }

  /** Crashes node 3 under a held lock and restarts it from its append-only file within the ttl. */
  async #killNode(): Promise<void> {
    const node = this.#ensemble.servers[2]!;
    const before = await this.#peek(node.url);
    await node.kill();
    this.#faults.push('a node killed and restarted');
    this.#fault(`node 3 (:${node.port}) killed with SIGKILL (${peekText(before)})`);
    await sleep(this.#t.ttl / 2);
    await node.restart();
    const after = await this.#peek(node.url);
    const fence =
      after.fence !== null && after.fence === before.fence
        ? `fence counter ${short(after.fence)} intact`
        : peekText(after);
    const key =
      before.held && after.held
        ? ', lock key restored with its expiry'
        : before.held
          ? '; its copy of the lock key expired while it was down'
          : '';
    this.#fault(`node 3 restarted from its append-only file: ${fence}${key}`);
  }

  /** The lock key and fence counter on one node. */
  async #peek(url: string): Promise<Peek> {
    const client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 1000 });
    client.on('error', () => {});
    try {
      const [holder, fence] = await Promise.all([
        client.get(lockKey('quorumlock:', RESOURCE)),
        client.get(fenceKey('quorumlock:', RESOURCE)),
      ]);
      return { held: holder !== null, fence: fence === null ? null : Number(fence) };
    } catch (err) {
      return { held: false, fence: null, error: (err as Error).message };
    } finally {
      client.disconnect();
    }
  }

  #spawn(host: string, night: number): Run {
    const t = this.#t;
    const args = [
      MAIN_JS,
      'run',
      '--ttl',
      `${t.ttl}ms`,
      '--wait',
      `${t.wait}ms`,
      '--grace',
      `${t.grace}ms`,
      '--node-timeout',
      `${t.nodeTimeout}ms`,
      '--log',
      'json',
      RESOURCE,
      '--',
      process.execPath,
      JOB_JS,
      String(night),
    ];
    const child = spawn(process.execPath, args, {
      // Its own process group, so a freeze or crash hits quorumlock and its job together.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        QUORUMLOCK_NODES: this.#ensemble.urls.join(','),
        DEMO_STORE_URL: this.#store.urls[0],
        DEMO_HOST: host,
        DEMO_ITEMS: String(ITEMS),
        DEMO_STEP_MS: String(t.step),
      },
    });
    const run: Run = {
      host,
      night,
      process: child,
      items: [],
      frozen: false,
      crashed: false,
      exited: Promise.resolve(),
    };
    run.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        run.exitCode = code;
        run.signal = signal;
        this.#onExit(run);
        resolve();
      });
    });
    this.#runs.push(run);
    createInterface({ input: child.stderr! }).on('line', (line) => this.#onLockEvent(run, line));
    createInterface({ input: child.stdout! }).on('line', (line) => this.#onJobEvent(run, line));
    return run;
  }

  /** Events from `quorumlock run --log json`. */
  #onLockEvent(run: Run, line: string): void {
    const e = parseEvent(line);
    if (!e) return;
    switch (e.event) {
      case 'acquired': {
        run.fence = Number(e.fence);
        run.acquiredAt = Number(e.t);
        run.validUntil = Number(e.validUntil);
        const previous = this.#holder;
        this.#holder = run;
        const takeover =
          previous && previous !== run && previous.night === run.night && previous.frozen
            ? ` (${previous.host}'s lock expired while it was frozen)`
            : previous?.crashed && previous.night === run.night
              ? ` (${previous.host}'s lock expired after its crash)`
              : '';
        this.#log(
          run.host,
          `ACQUIRED the lock, fence ${short(run.fence)}, valid ${(Number(e.remaining) / 1000).toFixed(2)} s${takeover}`,
        );
        break;
      }
      case 'started':
        run.childPid = Number(e.childPid);
        break;
      case 'extended':
        run.validUntil = Number(e.validUntil);
        break;
      case 'extend-failed':
        this.#log(
          run.host,
          `renewal failed; ${Math.round(Number(e.remaining))} ms of validity left`,
        );
        break;
      case 'terminating':
        this.#log(run.host, `quorumlock stops the job (SIGTERM): ${e.reason}`);
        break;
      case 'killing':
        this.#log(run.host, 'quorumlock kills the job (SIGKILL): grace is over');
        break;
      case 'exited':
        run.endedAt = Number(e.t);
        break;
      case 'error':
        this.#log(run.host, `quorumlock: ${e.message}`);
        break;
    }
  }

  /** Events from the job (demo-job.ts). */
  #onJobEvent(run: Run, line: string): void {
    const e = parseEvent(line);
    if (!e) return;
    if (e.event === 'item') {
      const item = Number(e.item);
      run.items.push(item);
      const key = `${run.night}:${item}`;
      this.#itemWrites.set(key, (this.#itemWrites.get(key) ?? 0) + 1);
      if (this.#onForeignItem) this.#onForeignItem(run);
      this.#maybeInjectFault(run);
    } else if (e.event === 'rejected') {
      const rejected = {
        run,
        item: e.item as number | null,
        token: Number(e.token),
        highest: Number(e.highest),
      };
      this.#rejected.push(rejected);
      this.#log(
        run.host,
        `STALE WRITE REJECTED by the store: item ${rejected.item === null ? '-' : rejected.item + 1} ` +
          `with fence ${short(rejected.token)} < highest seen ${short(rejected.highest)}; the job stops`,
      );
    } else if (e.event === 'complete') {
      if (e.already) this.#log(run.host, `night ${run.night} is already complete: nothing to do`);
      else this.#log(run.host, `${itemsText(run)}: night ${run.night} complete`);
    } else if (e.event === 'error') {
      this.#log(run.host, `job error: ${e.message}`);
    }
  }

  #onExit(run: Run): void {
    const code = run.exitCode;
    if (run.crashed) return;
    if (code === 0) {
      if (run.acquiredAt !== undefined) this.#log(run.host, 'released the lock (exit 0)');
    } else if (code === ExitCode.notAcquired) {
      this.#log(run.host, `gave up waiting for the lock (exit 75)`);
    } else if (code === ExitCode.lost) {
      this.#log(run.host, `quorumlock exits 76: the lock was lost while the job ran`);
    } else if (code === FENCED_OUT) {
      this.#log(run.host, `job exits ${FENCED_OUT}: fenced out`);
    } else {
      this.#log(run.host, `exit ${code ?? run.signal}`);
    }
  }

  /** Freezes or crashes the holder of the fault nights once it has done a few items. */
  #maybeInjectFault(run: Run): void {
    // Faults hit while a holder is mid-job, so the timeline shows their effect on it.
    const night = run.night;
    if (this.#faultNights.has(night)) return;
    if (night === PAUSE_NIGHT && run.items.length === 1) {
      this.#faultNights.add(night);
      this.#pendingFaults.push(this.#pauseNode());
    } else if (night === KILL_NIGHT && run.items.length === 1) {
      this.#faultNights.add(night);
      this.#pendingFaults.push(this.#killNode());
    } else if (night === FREEZE_NIGHT && run.items.length === 3) {
      this.#faultNights.add(night);
      this.#pendingFaults.push(this.#freeze(run));
    } else if (night === CRASH_NIGHT && run.items.length === 3) {
      this.#faultNights.add(night);
      this.#crash(run);
    }
  }

  async #freeze(run: Run): Promise<void> {
    const pid = run.process.pid!;
    signal(-pid, 'SIGSTOP');
    run.frozen = true;
    this.#faults.push('the holding host frozen past its validity');
    this.#fault(
      `${run.host} frozen with SIGSTOP (quorumlock and its job) after ${itemsText(run)}, holding fence ${short(run.fence!)}`,
    );
    // Thaw once another host has taken over and written, or after 4 ttls at most.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.#t.ttl * 4);
      this.#onForeignItem = (other) => {
        if (other === run || other.night !== run.night) return;
        clearTimeout(timer);
        resolve();
      };
    });
    this.#onForeignItem = undefined;
    await sleep(this.#t.step);
    // The job wakes first: exactly the late write a pause can cause, whatever the lock says.
    this.#fault(`${run.host} thawed: its job wakes up believing it still holds the lock`);
    if (run.childPid) signal(run.childPid, 'SIGCONT');
    await sleep(300);
    signal(-pid, 'SIGCONT');
  }

  #crash(run: Run): void {
    run.crashed = true;
    this.#faults.push('the holding host crashed');
    this.#fault(
      `${run.host} crashed (SIGKILL to quorumlock and its job) after ${itemsText(run)}, holding fence ${short(run.fence!)}`,
    );
    signal(-run.process.pid!, 'SIGKILL');
  }

  #killHosts(): void {
    for (const run of this.#runs) {
      if (run.exitCode === undefined && run.process.pid) {
        try {
          process.kill(-run.process.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
  }

  async #summary(): Promise<number> {
    const holds: Hold[] = this.#runs
      .filter((r) => r.acquiredAt !== undefined)
      .map((r) => ({
        holder: `${r.host}/night ${r.night}`,
        fence: r.fence!,
        acquiredAt: r.acquiredAt!,
        validUntil: r.validUntil!,
        endedAt: r.endedAt,
      }));
    const verdict = checkHistory(holds);
    const store = new Redis(this.#store.urls[0]!);
    const incomplete: string[] = [];
    try {
      for (let night = 1; night <= NIGHTS; night++) {
        const h = await store.hgetall(nightKey(night));
        const missing = Array.from({ length: ITEMS }, (_, i) => i).filter((i) => !h[`item:${i}`]);
        if (Number(h.next) !== ITEMS || missing.length > 0) incomplete.push(`night ${night}`);
      }
    } finally {
      store.disconnect();
    }
    const duplicates = [...this.#itemWrites.values()].filter((n) => n > 1).length;
    const codes = new Map<string, number>();
    for (const r of this.#runs) {
      const label = r.crashed ? 'crashed' : String(r.exitCode ?? r.signal);
      codes.set(label, (codes.get(label) ?? 0) + 1);
    }
    const election = this.#election;
    const terms = checkHistory(election?.terms ?? []);
    const ok =
      verdict.overlaps.length === 0 &&
      verdict.fenceRegressions.length === 0 &&
      terms.overlaps.length === 0 &&
      terms.fenceRegressions.length === 0 &&
      incomplete.length === 0 &&
      duplicates === 0;
    const sorted = holdsSorted(holds);
    const gaps = sorted.slice(1).map((h, i) => h.acquiredAt - windowEnd(sorted[i]!));
    out('');
    out(
      `summary (computed from the recorded history: ${holds.length} holds of ${RESOURCE}, ` +
        `${terms.holds} terms of ${SCHEDULER})`,
    );
    row('overlapping holders', `${verdict.overlaps.length + terms.overlaps.length}`);
    for (const o of [...verdict.overlaps, ...terms.overlaps]) {
      row('', `  ${o.first.holder} and ${o.second.holder} overlapped for ${Math.round(o.ms)} ms`);
    }
    const regressions = verdict.fenceRegressions.length + terms.fenceRegressions.length;
    row(
      'fence tokens',
      regressions === 0
        ? 'strictly increasing in acquisition order'
        : `${regressions} did not increase`,
    );
    row(
      'nights completed',
      `${NIGHTS - incomplete.length} of ${NIGHTS}, ${ITEMS} items each, ${duplicates === 0 ? 'every item written once' : `${duplicates} items written twice`}`,
    );
    row(
      'stale writes rejected',
      `${this.#rejected.length + (election?.rejected ?? 0)} (${this.#rejected.length} by a job, ` +
        `${election?.rejected ?? 0} by a scheduler; refused by the store's fencing guard)`,
    );
    row('runs by exit', [...codes].map(([c, n]) => `${c}: ${n}`).join(', '));
    if (election?.crashTakeoverMs !== undefined || election?.handoverMs !== undefined) {
      const crash = election.crashTakeoverMs;
      const handover = election.handoverMs;
      row(
        'new leader',
        [
          crash === undefined
            ? ''
            : `${(crash / 1000).toFixed(2)} s after a crash (ttl ${this.#t.ttl / 1000} s)`,
          handover === undefined ? '' : `${handover} ms after a resignation`,
        ]
          .filter((x) => x)
          .join(', '),
      );
    }
    if (gaps.length > 0) {
      row(
        'closest handoff',
        `${Math.round(Math.min(...gaps))} ms between one hold's end and the next acquisition`,
      );
    }
    row('faults injected', [...this.#faults, ...(election?.faults ?? [])].join(', ') || 'none');
    out(ok ? 'result: OK' : 'result: FAILED');
    return ok ? ExitCode.ok : ExitCode.failure;
  }

  #log(who: string, text: string): void {
    this.#timeline.log(who, text);
  }

  #fault(text: string): void {
    this.#timeline.fault(text);
  }
}

/** What one node holds for the demo's lock. */
interface Peek {
  readonly held: boolean;
  readonly fence: number | null;
  readonly error?: string;
}

function peekText(p: Peek): string {
  if (p.error) return `unreadable: ${p.error}`;
  return `lock key ${p.held ? 'held' : 'free'}, fence counter ${p.fence === null ? 'none' : short(p.fence)}`;
}

function holdsSorted(holds: readonly Hold[]): Hold[] {
  return [...holds].sort((a, b) => a.acquiredAt - b.acquiredAt);
}

function itemsText(run: Run): string {
  if (run.items.length === 0) return 'no items';
  const first = run.items[0]! + 1;
  const last = run.items[run.items.length - 1]! + 1;
  return first === last ? `item ${first}` : `items ${first}–${last}`;
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('demo', argv, {
    duration: { type: 'string' },
    hosts: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    out(HELP);
    return ExitCode.ok;
  }
  if (positionals.length > 0) throw new UsageError(`demo: unexpected argument "${positionals[0]}"`);
  const duration =
    values.duration === undefined ? 60_000 : parseDuration(values.duration, '--duration');
  if (duration < 20_000) throw new UsageError('--duration must be at least 20s');
  const hosts = values.hosts === undefined ? 4 : parsePositiveInt(values.hosts, '--hosts');
  if (hosts < 2 || hosts > 8) throw new UsageError('--hosts must be between 2 and 8');
  return new Demo(timing(duration), hosts).run();
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof UsageError ? ExitCode.usage : ExitCode.failure);
  },
);

/** Sends `sig` to `pid` (a negative pid: its process group); one that has exited already is left alone. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
