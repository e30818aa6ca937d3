#!/usr/bin/env node
/**
 * The `quorumlock` command: dispatches to run, status, doctor and bench, and
 * turns every error into its documented exit code.
 */
import { BENCH_HELP, benchCommand } from './bench.js';
import { DOCTOR_HELP, doctorCommand } from './doctor.js';
import { EXIT_CODE_HELP, ExitCode, exitCodeFor } from './exit.js';
import { RUN_HELP, runCommand } from './run.js';
import { STATUS_HELP, statusCommand } from './status.js';
import { packageVersion } from './version.js';

type Command = (argv: readonly string[], env: NodeJS.ProcessEnv) => Promise<number>;

const COMMANDS: Record<string, { run: Command; help: string }> = {
  run: { run: runCommand, help: RUN_HELP },
  status: { run: statusCommand, help: STATUS_HELP },
  doctor: { run: doctorCommand, help: DOCTOR_HELP },
  bench: { run: benchCommand, help: BENCH_HELP },
};

/** Help text of `quorumlock` itself. */
export const MAIN_HELP = `Usage: quorumlock <command> [options]

Distributed locks over a majority of independent Redis masters (Redlock),
with renewal, fencing tokens and kill-on-loss.

Commands:
  run <resource> -- <command>   run a command while holding the lock
  status <resource>             who holds the lock, per node and by quorum
  doctor                        check the nodes against the safety assumptions
  bench                         measure lock latency and throughput
  help [command]                show help for a command

Nodes come from --nodes redis://host:port,... or QUORUMLOCK_NODES.
Run \`quorumlock <command> --help\` for a command's options.

${EXIT_CODE_HELP}`;

/** Runs the command line `argv` (without node and script); resolves with the exit code. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(`${MAIN_HELP}\n`);
    return ExitCode.usage;
  }
  if (name === '-h' || name === '--help') {
    process.stdout.write(`${MAIN_HELP}\n`);
    return ExitCode.ok;
  }
  if (name === '-V' || name === '--version') {
    process.stdout.write(`${packageVersion()}\n`);
    return ExitCode.ok;
  }
  if (name === 'help') {
    const topic = rest[0];
    if (topic === undefined) {
      process.stdout.write(`${MAIN_HELP}\n`);
      return ExitCode.ok;
    }
    const command = COMMANDS[topic];
    if (!command) return unknown(topic);
    process.stdout.write(`${command.help}\n`);
    return ExitCode.ok;
  }
  const command = COMMANDS[name];
  if (!command) return unknown(name);
  try {
    return await command.run(rest, env);
  } catch (err) {
    const code = exitCodeFor(err);
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`quorumlock: ${message}\n`);
    if (code === ExitCode.usage) {
      process.stderr.write(`Run \`quorumlock ${name} --help\` for usage.\n`);
    }
    return code;
  }
}

function unknown(name: string): number {
  process.stderr.write(
    `quorumlock: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}, help\n`,
  );
  return ExitCode.usage;
}

// Exit explicitly: a command is done when it returns, whatever handles a library left open.
main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `quorumlock: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(ExitCode.failure);
  },
);
