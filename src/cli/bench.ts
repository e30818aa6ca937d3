/**
 * `quorumlock bench`: runs the project's benchmark (bench/run.mjs) against the
 * user's own nodes, or against a local ensemble the benchmark starts itself
 * when no nodes are given.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { resolveNodes } from './args.js';
import { EXIT_CODE_HELP, ExitCode } from './exit.js';

/** Help text of `quorumlock bench`. */
export const BENCH_HELP = `Usage: quorumlock bench [--nodes URL,...] [--quick] [benchmark options...]

Runs the lock latency, throughput and contention benchmark (bench/run.mjs in
a source checkout) against the given Redis masters. Without --nodes or
QUORUMLOCK_NODES it starts five local redis-server masters itself. Every other
option is passed to the benchmark unchanged; --quick gives a short smoke run.

Run it from a clone of the repository after \`npm run build\` and
\`npm --prefix bench ci\` (the benchmark's contenders are not runtime dependencies).

Options:
  --nodes URL,...     benchmark these masters (default: QUORUMLOCK_NODES, else local ones)
  -h, --help          show this help

${EXIT_CODE_HELP}
  bench exits with the benchmark's own exit code.`;

/** The repository root, seen from dist/cli/ (and from src/cli/ under a TS loader). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Runs `quorumlock bench`; resolves with the exit code. */
export async function benchCommand(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(`${BENCH_HELP}\n`);
    return ExitCode.ok;
  }
  const passThrough: string[] = [];
  let nodesFlag: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--nodes') {
      nodesFlag = argv[++i] ?? '';
    } else if (arg.startsWith('--nodes=')) {
      nodesFlag = arg.slice('--nodes='.length);
    } else {
      passThrough.push(arg);
    }
  }
  const given = nodesFlag !== undefined || (env.QUORUMLOCK_NODES ?? '').trim() !== '';
  const nodes = given ? resolveNodes(nodesFlag, env) : undefined;

  const script = `${ROOT}bench/run.mjs`;
  if (!existsSync(script)) {
    process.stderr.write(
      `quorumlock: the benchmark is not here (${script}); run it from a clone of the quorumlock repository\n`,
    );
    return ExitCode.failure;
  }
  if (!existsSync(`${ROOT}bench/node_modules`)) {
    process.stderr.write(
      'quorumlock: the benchmark needs its contenders: run `npm --prefix bench ci` first\n',
    );
    return ExitCode.failure;
  }
  const args = [script, ...(nodes ? ['--nodes', nodes.join(',')] : []), ...passThrough];
  const child = spawn(process.execPath, args, { stdio: 'inherit', cwd: ROOT, env });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    return await new Promise<number>((resolve) => {
      child.once('error', (err) => {
        process.stderr.write(`quorumlock: could not start the benchmark: ${err.message}\n`);
        resolve(ExitCode.failure);
      });
      child.once('exit', (code, signal) =>
        resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)),
      );
    });
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}
