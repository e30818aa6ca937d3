/**
 * `quorumlock run`: runs a command while holding a lock, like flock(1) over
 * a Redis majority. The lock is renewed while the child runs; if it cannot be
 * kept, the child is stopped before the lock's validity ends, so the child
 * never runs unprotected by the lock (fencing covers what a frozen host does).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { channels } from '../diagnostics.js';
import { QuorumError } from '../errors.js';
import type { Lock } from '../lock.js';
import type { LockProvider } from '../provider.js';
import { Redlock } from '../redis/redlock.js';
import {
  LOCK_OPTIONS,
  LOCK_OPTIONS_HELP,
  nodeSettings,
  parseCommandArgs,
  parseDuration,
  parsePositiveInt,
  parseWait,
  UsageError,
} from './args.js';
import { openCliProvider } from './backends.js';
import { EXIT_CODE_HELP, ExitCode, exitCodeFor } from './exit.js';

/** Help text of `quorumlock run`. */
export const RUN_HELP = `Usage: quorumlock run [options] <resource> -- <command> [args...]

Acquires the lock <resource> on a majority of the Redis nodes, runs <command>
while renewing the lock, releases it when the command exits and exits with the
command's exit code. The command gets QUORUMLOCK_RESOURCE and QUORUMLOCK_FENCE
(the fencing token: pass it to whatever the command writes to).

If the lock cannot be kept (renewal fails, a majority is unreachable), the
command gets SIGTERM --grace before the lock's validity ends and SIGKILL just
before it ends, so it never runs past the lock; quorumlock then exits 76.
SIGINT, SIGTERM and SIGHUP sent to quorumlock are forwarded to the command.

Options:
  --ttl DURATION      lock time to live, renewed every ttl/3 (default 30s)
  --wait DURATION     how long to wait for a lock held by another:
                      0 (default: fail at once), a duration, or forever
  --grace DURATION    time between SIGTERM and SIGKILL when the lock is being
                      lost (default 5s, at most a quarter of --ttl)
  --conflict-exit-code N
                      exit N instead of 75 when the lock is held by another
                      (like flock -E), so it cannot be mistaken for the
                      command's own exit code; 0 to 255
  --limit N           take one of N permits of the semaphore <resource> instead
                      of the lock: at most N commands run at once (Redis only)
  --log text|json     report lock events (acquired, extended, lost, ...) on stderr
  -v, --verbose       same as --log text
${LOCK_OPTIONS_HELP}

Durations: 500ms, 30s, 2m, 1h or plain milliseconds.

Examples:
  quorumlock run --nodes redis://a:6379,redis://b:6379,redis://c:6379 \\
      nightly-report -- ./make-report.sh
  QUORUMLOCK_NODES=... quorumlock run --ttl 1m --wait 10m backup -- pg_dump ...
  QUORUMLOCK_NODES=... quorumlock run --limit 3 --wait forever encoders -- ./encode.sh

${EXIT_CODE_HELP}`;

const RUN_OPTIONS = {
  ...LOCK_OPTIONS,
  ttl: { type: 'string' },
  wait: { type: 'string' },
  grace: { type: 'string' },
  'conflict-exit-code': { type: 'string' },
  limit: { type: 'string' },
  log: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
} as const;

/** What `run` was asked to do, after validation. */
export interface RunPlan {
  readonly resource: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly ttl: number;
  /** ms; Infinity waits without limit. */
  readonly wait: number;
  readonly grace: number;
  /** Exit code when the lock is held by another (`--conflict-exit-code`, default 75). */
  readonly conflictExitCode: number;
  /** With `--limit`: the command runs under one of this many permits of the semaphore `resource`. */
  readonly limit?: number;
  readonly log: 'none' | 'text' | 'json';
  readonly urls: string[];
  readonly quorum: number | undefined;
  readonly keyPrefix: string | undefined;
  readonly nodeTimeout: number | undefined;
}

/** Parses `run`'s arguments; throws UsageError on anything wrong. Returns null for --help. */
export function parseRunArgs(argv: readonly string[], env: NodeJS.ProcessEnv): RunPlan | null {
  const { values, positionals, tokens } = parseCommandArgs('run', argv, RUN_OPTIONS);
  if (values.help) return null;
  const terminator = tokens.find((t) => t.kind === 'option-terminator');
  // Positionals before `--` are ours; everything after it is the command, untouched.
  const ownCount = terminator
    ? tokens.filter((t) => t.kind === 'positional' && t.index < terminator.index).length
    : Math.min(1, positionals.length);
  const own = positionals.slice(0, ownCount);
  const commandLine = positionals.slice(ownCount);
  if (own.length === 0 || own[0] === '') {
    throw new UsageError('run: missing <resource>; usage: quorumlock run <resource> -- <command>');
  }
  if (own.length > 1) {
    throw new UsageError(
      `run: one resource only, got ${own.map((r) => `"${r}"`).join(' ')} before --`,
    );
  }
  if (commandLine.length === 0) {
    throw new UsageError('run: missing <command>; usage: quorumlock run <resource> -- <command>');
  }
  const ttl = values.ttl === undefined ? 30_000 : parseDuration(values.ttl, '--ttl');
  if (ttl === 0) throw new UsageError('--ttl must be more than 0');
  const wait = values.wait === undefined ? 0 : parseWait(values.wait);
  const grace =
    values.grace === undefined
      ? Math.min(5000, Math.floor(ttl / 4))
      : parseDuration(values.grace, '--grace');
  if (grace > ttl / 4) {
    // Renewal runs every ttl/3; a longer grace would stop healthy children between renewals.
    throw new UsageError(`--grace ${grace} ms must be at most a quarter of --ttl (${ttl} ms)`);
  }
  const conflict = values['conflict-exit-code'];
  const conflictExitCode =
    conflict === undefined ? ExitCode.notAcquired : parseExitCode(conflict, '--conflict-exit-code');
  const limit = values.limit === undefined ? undefined : parsePositiveInt(values.limit, '--limit');
  let log: RunPlan['log'] = values.verbose ? 'text' : 'none';
  if (values.log !== undefined) {
    if (values.log !== 'text' && values.log !== 'json') {
      throw new UsageError(`--log must be text or json, got "${values.log}"`);
    }
    log = values.log;
  }
  const nodes = nodeSettings(values, env);
  return {
    resource: own[0]!,
    command: commandLine[0]!,
    args: commandLine.slice(1),
    ttl,
    wait,
    grace,
    conflictExitCode,
    ...(limit === undefined ? {} : { limit }),
    log,
    ...nodes,
  };
}

/** Parses an exit status, 0 to 255; throws UsageError naming `flag` otherwise. */
function parseExitCode(text: string, flag: string): number {
  if (!/^\d{1,3}$/.test(text.trim()) || Number(text) > 255) {
    throw new UsageError(`${flag}: "${text}" is not an exit status from 0 to 255`);
  }
  return Number(text);
}

/** Pause before another try after a round that could not reach a quorum, ms. */
const QUORUM_RETRY_MS = 250;

/** The signals forwarded to the child. */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type Forwarded = (typeof FORWARDED)[number];

/** Runs `quorumlock run`; resolves with the exit code. */
export async function runCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const plan = parseRunArgs(argv, env);
  if (plan === null) {
    process.stdout.write(`${RUN_HELP}\n`);
    return ExitCode.ok;
  }
  const log = eventLog(plan);
  const redlock = await openCliProvider(plan, plan.ttl);
  try {
    const lock = await acquireInterruptibly(permitsOf(redlock, plan), plan, log);
    if (typeof lock === 'number') return lock;
    return await supervise(lock, plan, env, log);
  } catch (err) {
    const reason = exitCodeFor(err);
    const code = reason === ExitCode.notAcquired ? plan.conflictExitCode : reason;
    // The library counts the last try's budget; the user asked for --wait as a whole.
    const message =
      reason === ExitCode.notAcquired
        ? `"${plan.resource}" is held by another holder; gave up after --wait ${plan.wait} ms`
        : err instanceof Error
          ? err.message
          : String(err);
    log('error', { message, exit: code });
    process.stderr.write(`quorumlock: ${message}\n`);
    return code;
  } finally {
    await redlock.close();
  }
}

/** What `run` takes the lock (or, with --limit, a permit) from. */
type LockSource = Pick<LockProvider, 'acquire' | 'tryAcquire'>;

/** The provider itself, or with --limit the semaphore `plan.resource` on its nodes. */
function permitsOf(provider: LockProvider, plan: RunPlan): LockSource {
  if (plan.limit === undefined) return provider;
  if (!(provider instanceof Redlock)) {
    throw new UsageError('--limit needs Redis nodes: the other backends have no semaphore');
  }
  const semaphore = provider.semaphore(plan.resource, { limit: plan.limit });
  return {
    acquire: (_resource, options) => semaphore.acquire(options),
    tryAcquire: (_resource, options) => semaphore.tryAcquire(options),
  };
}

/** Acquires the lock; a signal while waiting gives up and resolves with 128 + its number. */
async function acquireInterruptibly(
  redlock: LockSource,
  plan: RunPlan,
  log: EventLog,
): Promise<Lock | number> {
  const controller = new AbortController();
  let interrupted: Forwarded | undefined;
  const handlers = FORWARDED.map((sig) => {
    const handler = () => {
      interrupted = sig;
      controller.abort(new Error(`interrupted by ${sig}`));
    };
    process.on(sig, handler);
    return () => process.off(sig, handler);
  });
  log('acquiring', { resource: plan.resource, wait: plan.wait });
  const deadline = performance.now() + plan.wait;
  try {
    for (;;) {
      const options = { ttl: plan.ttl, renew: true, signal: controller.signal };
      const left = deadline - performance.now();
      let lock: Lock | null;
      try {
        lock =
          plan.wait === 0
            ? await redlock.tryAcquire(plan.resource, options)
            : await redlock.acquire(plan.resource, {
                ...options,
                wait: Math.max(0, Math.ceil(left)),
              });
      } catch (err) {
        // Within --wait, nodes that could not be reached may come back: keep trying.
        const retryIn = Math.min(QUORUM_RETRY_MS, deadline - performance.now());
        if (!(err instanceof QuorumError) || interrupted || retryIn <= 0) throw err;
        log('retrying', { reason: err.message, inMs: retryIn });
        await sleep(retryIn, undefined, { signal: controller.signal });
        continue;
      }
      if (lock === null) {
        log('busy', { resource: plan.resource, exit: plan.conflictExitCode });
        process.stderr.write(
          `quorumlock: "${plan.resource}" is held by another holder; not running the command (use --wait to wait)\n`,
        );
        return plan.conflictExitCode;
      }
      return lock;
    }
  } catch (err) {
    if (interrupted) return 128 + constants.signals[interrupted];
    throw err;
  } finally {
    for (const off of handlers) off();
  }
}

/** Runs the child under `lock`; resolves with the exit code once the lock is released. */
async function supervise(
  lock: Lock,
  plan: RunPlan,
  env: NodeJS.ProcessEnv,
  log: EventLog,
): Promise<number> {
  const fence = lock.fence;
  // A lock handed over by a release is valid for a short grace until it is
  // extended to its ttl: do that before the child starts, so its --grace is real.
  if (lock.remaining() < plan.ttl / 2) await lock.extend().catch(() => {});
  log('acquired', {
    resource: plan.resource,
    fence,
    validUntil: lock.validUntil,
    remaining: lock.remaining(),
  });
  const onExtend = (message: unknown) => {
    const event = message as { resources: readonly string[]; ok: boolean };
    if (event.resources !== lock.resources) return;
    // The lock takes its new deadline just after the event is published.
    setImmediate(() => {
      if (!lock.held) return;
      if (event.ok) log('extended', { validUntil: lock.validUntil, remaining: lock.remaining() });
      else log('extend-failed', { remaining: lock.remaining() });
    });
  };
  if (plan.log !== 'none') diagnostics.subscribe(channels.extend, onExtend);

  const child = spawnChild(plan, env, fence);
  // `pid` of every log line is quorumlock's own; the command's is `childPid`.
  log('started', { childPid: child.pid, command: plan.command });

  let terminating: string | undefined;
  let cancelKill: (() => void) | undefined;
  let cancelWatch: (() => void) | undefined;
  // SIGKILL is aimed this far before the validity deadline, so a timer that
  // fires late on a busy host still lands before it.
  const margin = Math.min(1000, Math.max(25, plan.ttl * 0.05));

  const terminate = (reason: string) => {
    if (terminating !== undefined) return;
    terminating = reason;
    cancelWatch?.();
    const killIn = Math.max(0, Math.min(plan.grace, lock.remaining() - margin));
    log('terminating', { reason, signal: 'SIGTERM', killInMs: killIn });
    process.stderr.write(`quorumlock: ${reason}; stopping the command (SIGTERM)\n`);
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      log('killing', { signal: 'SIGKILL' });
      child.kill('SIGKILL');
    }, killIn);
    cancelKill = () => clearTimeout(timer);
  };

  // Renewal keeps remaining() near ttl; when it has not for so long that only
  // `grace` is left, the lock is as good as lost: start stopping the child now.
  // SIGTERM is aimed one more margin early, so a late timer still leaves the
  // child its whole grace before SIGKILL.
  const watch = () => {
    const left = lock.remaining() - margin;
    if (left <= plan.grace + margin) {
      terminate(
        left <= 0
          ? 'the lock expired before it could be renewed'
          : `the lock could not be renewed; its validity ends in ${Math.round(left)} ms`,
      );
      return;
    }
    const timer = setTimeout(watch, left - plan.grace - margin);
    cancelWatch = () => clearTimeout(timer);
  };
  watch();
  const onLost = () => {
    const reason = lock.signal.reason as Error | undefined;
    log('lost', { reason: reason?.message });
    terminate(`lock lost: ${reason?.message ?? 'unknown reason'}`);
  };
  lock.signal.addEventListener('abort', onLost, { once: true });

  let forwardedSignal: Forwarded | undefined;
  const forwarders = FORWARDED.map((sig) => {
    const handler = () => {
      forwardedSignal = sig;
      log('forwarding', { signal: sig });
      child.kill(sig);
    };
    process.on(sig, handler);
    return () => process.off(sig, handler);
  });

  const result = await waitForExit(child);
  lock.signal.removeEventListener('abort', onLost);
  cancelWatch?.();
  cancelKill?.();
  for (const off of forwarders) off();
  // A child that outlived the lock's validity (the whole host was frozen, say)
  // did not run entirely under the lock, even if nobody noticed in time.
  if (terminating === undefined && (!lock.held || lock.remaining() <= 0)) {
    terminating = lock.held ? 'the lock expired while the command ran' : 'lock lost';
  }
  log('exited', { code: result.code, signal: result.signal, childPid: child.pid });

  try {
    await lock.release();
    log('released', { resource: plan.resource });
  } catch (err) {
    // The lock expires on its own; the child's outcome is what this command reports.
    log('release-failed', { message: (err as Error).message });
    process.stderr.write(
      `quorumlock: could not confirm the release (${(err as Error).message}); the lock expires within ${plan.ttl} ms\n`,
    );
  }
  if (plan.log !== 'none') diagnostics.unsubscribe(channels.extend, onExtend);

  let code: number;
  if (terminating !== undefined) code = ExitCode.lost;
  else if (result.spawnError) code = result.spawnError;
  else if (result.signal) code = 128 + (constants.signals[result.signal] ?? 0);
  else code = result.code ?? ExitCode.failure;
  if (terminating !== undefined && forwardedSignal === undefined) {
    process.stderr.write(`quorumlock: the command was stopped because ${terminating}\n`);
  }
  log('exit', { code });
  return code;
}

function spawnChild(
  plan: RunPlan,
  env: NodeJS.ProcessEnv,
  fence: number | undefined,
): ChildProcess {
  return spawn(plan.command, [...plan.args], {
    stdio: 'inherit',
    env: {
      ...env,
      QUORUMLOCK_RESOURCE: plan.resource,
      ...(fence === undefined ? {} : { QUORUMLOCK_FENCE: String(fence) }),
    },
  });
}

interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** 127 when the command was not found, 126 when it could not be executed (as shells do). */
  readonly spawnError?: number;
}

function waitForExit(child: ChildProcess): Promise<ChildResult> {
  return new Promise((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      const notFound = err.code === 'ENOENT';
      process.stderr.write(
        `quorumlock: cannot run the command: ${notFound ? 'not found' : err.message}\n`,
      );
      resolve({ code: null, signal: null, spawnError: notFound ? 127 : 126 });
    });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Writes one lock event to stderr in the chosen format; a no-op with `--log none`. */
type EventLog = (event: string, fields: Record<string, unknown>) => void;

function eventLog(plan: RunPlan): EventLog {
  if (plan.log === 'none') return () => {};
  if (plan.log === 'json') {
    return (event, fields) => {
      process.stderr.write(
        `${JSON.stringify({ t: Date.now(), pid: process.pid, event, ...fields })}\n`,
      );
    };
  }
  return (event, fields) => {
    const parts = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => {
        if (k === 'validUntil' && typeof v === 'number') return `${k}=${new Date(v).toISOString()}`;
        if (typeof v === 'number' && !Number.isInteger(v)) return `${k}=${Math.round(v)}`;
        return `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : String(v)}`;
      });
    process.stderr.write(`quorumlock: ${event} ${parts.join(' ')}\n`);
  };
}
