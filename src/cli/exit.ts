/**
 * Exit codes of the `quorumlock` command, after sysexits(3) where one fits,
 * and how the library's errors map onto them.
 */
import {
  AcquireTimeoutError,
  InvalidArgumentError,
  LockLostError,
  LockTakenError,
  QuorumError,
} from '../errors.js';
import { UsageError } from './args.js';

/** Exit codes; the values are part of the command's contract. */
export const ExitCode = {
  /** Success (for `run`: the child exited 0). */
  ok: 0,
  /** A check failed (`doctor`) or an unexpected error. */
  failure: 1,
  /** The command was called wrongly (EX_USAGE). */
  usage: 64,
  /** No quorum of nodes could be reached (EX_UNAVAILABLE). */
  noQuorum: 69,
  /** The lock could not be acquired within `--wait` (EX_TEMPFAIL). */
  notAcquired: 75,
  /** The lock was lost while the child ran; the child was stopped. */
  lost: 76,
} as const;

/** The exit code lines every command's help ends with. */
export const EXIT_CODE_HELP = `Exit codes:
  0    success (run: the child's own exit code is passed through)
  1    a check failed (doctor) or an unexpected error
  64   usage error: bad option, duration or node URL
  69   no quorum: too few Redis nodes reachable
  75   could not acquire the lock within --wait (held by another);
       run --conflict-exit-code N makes this N
  76   the lock was lost while the child ran; the child was terminated
  128+N  run: the child died of signal N`;

/** The exit code for an error raised by the library or the CLI. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof InvalidArgumentError) return ExitCode.usage;
  if (err instanceof QuorumError) return ExitCode.noQuorum;
  if (err instanceof AcquireTimeoutError) {
    // A wait that ran out only because the nodes were down is a quorum problem,
    // not contention: say so with 69 rather than 75.
    return causeChain(err).some((c) => c instanceof QuorumError)
      ? ExitCode.noQuorum
      : ExitCode.notAcquired;
  }
  if (err instanceof LockTakenError) return ExitCode.notAcquired;
  if (err instanceof LockLostError) return ExitCode.lost;
  return ExitCode.failure;
}

function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = err instanceof Error ? err.cause : undefined;
  while (current !== undefined && chain.length < 10) {
    chain.push(current);
    current = current instanceof Error ? current.cause : undefined;
  }
  return chain;
}
