/**
 * `quorumlock bench`: measures lock latency and throughput on the user's own
 * nodes (or on a local ensemble it starts when none are given). It needs
 * nothing beyond the installed package; the comparison against other
 * libraries lives in the repository's bench/ directory.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { backendOf, connect, splitNodeList } from '../provider.js';
import {
  NODE_OPTIONS,
  nodeLabel,
  nodeSettings,
  parseCommandArgs,
  parseDuration,
  parsePositiveInt,
  redlockOptions,
  UsageError,
} from './args.js';
import { benchHtml } from './bench-html.js';
import {
  type BenchProvider,
  measureContended,
  measureRedisRtt,
  measureSequential,
  measureThroughput,
  physicalLimit,
} from './bench-measure.js';
import { type BenchResult, markdown, summarize } from './bench-report.js';
import { type LocalEnsemble, startLocalEnsemble } from './ensemble.js';
import { EXIT_CODE_HELP, ExitCode } from './exit.js';
import { packageVersion } from './version.js';

/** Help text of `quorumlock bench`. */
export const BENCH_HELP = `Usage: quorumlock bench [options]

Measures locks on your nodes: each node's round-trip time and the physical
limit (the quorum-th fastest node's RTT: no acquire can be faster), sequential
acquire/release latency, throughput at a concurrency, and the handoff between
independent clients contending for one lock. A progress line goes to stderr,
Markdown tables to stdout. Without --nodes or QUORUMLOCK_NODES it starts five
local redis-server masters (redis-server must be on PATH).

It writes short-lived keys under the key prefix (bench:<random>:...) and
removes the locks it takes; point it at servers where that is harmless.

Options:
  --nodes URL,...     the nodes (default: QUORUMLOCK_NODES, else a local ensemble)
  --quorum N          nodes that must agree (default: a majority)
  --key-prefix P      prefix of the lock keys (default: quorumlock:)
  --quick             a short run, under a minute
  --samples N         sequential acquire/release cycles (default 2000, --quick 300)
  --duration D        length of the throughput and of the contention run
                      (default 10s, --quick 3s)
  --concurrency N     acquire/release loops at once for throughput (default 16)
  --clients N         independent clients contending for one lock (default 4)
  --hold D            how long each contending client holds the lock (default 0)
  --ttl D             ttl of every lock taken (default 10s)
  --json              print the results as JSON instead of Markdown
  --html FILE         also write a self-contained HTML report with latency charts
  -h, --help          show this help

${EXIT_CODE_HELP}`;

const BENCH_OPTIONS = {
  ...NODE_OPTIONS,
  quick: { type: 'boolean' },
  samples: { type: 'string' },
  duration: { type: 'string' },
  concurrency: { type: 'string' },
  clients: { type: 'string' },
  hold: { type: 'string' },
  ttl: { type: 'string' },
  json: { type: 'boolean' },
  html: { type: 'string' },
} as const;

/** Nodes a local ensemble has when no nodes are given. */
const LOCAL_NODES = 5;
/** PINGs per node for its round-trip time. */
const RTT_SAMPLES = 200;

/** Runs `quorumlock bench`; resolves with the exit code. */
export async function benchCommand(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const { values, positionals } = parseCommandArgs('bench', argv, BENCH_OPTIONS);
  if (values.help) {
    process.stdout.write(`${BENCH_HELP}\n`);
    return ExitCode.ok;
  }
  if (positionals.length > 0) {
    throw new UsageError(`bench: unexpected argument "${positionals[0]}"`);
  }
  const quick = values.quick ?? false;
  const settings = {
    samples: parsePositiveInt(values.samples ?? (quick ? '300' : '2000'), '--samples'),
    durationMs: parseDuration(values.duration ?? (quick ? '3s' : '10s'), '--duration'),
    concurrency: parsePositiveInt(values.concurrency ?? '16', '--concurrency'),
    clients: parsePositiveInt(values.clients ?? '4', '--clients'),
    holdMs: parseDuration(values.hold ?? '0', '--hold'),
    ttlMs: parseDuration(values.ttl ?? '10s', '--ttl'),
  };
  if (settings.durationMs === 0) throw new UsageError('--duration must be more than 0');
  if (settings.ttlMs < 100) throw new UsageError('--ttl must be at least 100ms');

  const given = values.nodes !== undefined || (env.QUORUMLOCK_NODES ?? '').trim() !== '';
  let local: LocalEnsemble | undefined;
  let nodes: Target;
  if (given) {
    nodes = target(values, env);
  } else {
    progressLine(`starting ${LOCAL_NODES} local redis-server masters`);
    local = await startLocalEnsemble({ size: LOCAL_NODES });
    nodes = target({ ...values, nodes: local.urls.join(',') }, env);
  }
  try {
    return await bench(nodes, settings, quick, values.json ?? false, values.html);
  } finally {
    endProgress();
    await local?.stop();
  }
}

/** The nodes to measure: Redis masters (with the Redlock settings) or one other backend's URL. */
interface Target {
  readonly backend: string;
  readonly urls: string[];
  readonly quorum: number;
  readonly redis?: ReturnType<typeof nodeSettings>;
}

function target(values: Parameters<typeof nodeSettings>[0], env: NodeJS.ProcessEnv): Target {
  const list = splitNodeList(values.nodes ?? env.QUORUMLOCK_NODES ?? '');
  const backend = list[0] === undefined ? undefined : backendOf(list[0]);
  if (backend === undefined || backend === 'redis') {
    // The Redis path validates the URLs, --quorum and the rest as every command does.
    const redis = nodeSettings(values, env);
    const quorum = redis.quorum ?? Math.floor(redis.urls.length / 2) + 1;
    return { backend: 'redis', urls: redis.urls, quorum, redis };
  }
  if (values.quorum !== undefined) {
    throw new UsageError(`--quorum applies to Redis nodes only, not to ${backend}`);
  }
  return { backend, urls: list, quorum: 1 };
}

async function bench(
  nodes: Target,
  settings: BenchResult['settings'],
  quick: boolean,
  json: boolean,
  htmlFile: string | undefined,
): Promise<number> {
  const date = new Date().toISOString();
  const quorum = nodes.quorum;
  const open = async (): Promise<BenchProvider> =>
    connect(
      nodes.urls,
      nodes.redis ? redlockOptions(nodes.redis, settings.ttlMs) : { ttl: settings.ttlMs },
    );

  // Round trips are measured with PING, so for Redis only; other backends show no RTT.
  progressLine('measuring node round trips');
  const rttNodes =
    nodes.backend === 'redis'
      ? await measureRedisRtt(nodes.urls, quick ? RTT_SAMPLES / 2 : RTT_SAMPLES)
      : [];
  const reachable = rttNodes.filter((n) => n.ok).length;
  if (nodes.backend === 'redis' && reachable < quorum) {
    endProgress();
    for (const n of rttNodes.filter((node) => !node.ok)) {
      process.stderr.write(`quorumlock: bench: ${n.node} is unreachable: ${n.error}\n`);
    }
    process.stderr.write(
      `quorumlock: bench: only ${reachable} of ${nodes.urls.length} nodes answered; a lock needs ${quorum}\n`,
    );
    return ExitCode.noQuorum;
  }

  const run = randomBytes(6).toString('hex');
  const main = await open();
  let sequential: Awaited<ReturnType<typeof measureSequential>>;
  let throughput: Awaited<ReturnType<typeof measureThroughput>>;
  try {
    sequential = await measureSequential(
      main,
      `bench:${run}:seq`,
      settings.samples,
      settings.ttlMs,
      (f) => progress('sequential', f),
    );
    throughput = await measureThroughput(
      main,
      `bench:${run}:tp:`,
      settings.concurrency,
      settings.durationMs,
      settings.ttlMs,
      (f) => progress(`throughput at concurrency ${settings.concurrency}`, f),
    );
  } finally {
    await main.close();
  }
  const clients = await Promise.all(Array.from({ length: settings.clients }, open));
  let contended: Awaited<ReturnType<typeof measureContended>>;
  try {
    contended = await measureContended(
      clients,
      `bench:${run}:contended`,
      settings.durationMs,
      settings.holdMs,
      settings.ttlMs,
      (f) => progress(`contention, ${settings.clients} clients`, f),
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  endProgress();

  const acquisitions = contended.perClient.reduce((a, b) => a + b, 0);
  const result: BenchResult = {
    tool: 'quorumlock bench',
    schema: 1,
    version: packageVersion(),
    date,
    quick,
    backend: nodes.backend,
    nodes: nodes.urls.map(nodeLabel),
    quorum,
    settings,
    rtt: { nodes: rttNodes, physicalLimitMs: physicalLimit(rttNodes, quorum) },
    sequential: {
      acquire: summarize(sequential.acquire),
      release: summarize(sequential.release),
      errors: sequential.errors.count,
      errorCodes: sequential.errors.byCode,
    },
    throughput: {
      concurrency: settings.concurrency,
      durationMs: Math.round(throughput.elapsedMs),
      cycles: throughput.cycles,
      cyclesPerSecond: perSecond(throughput.cycles, throughput.elapsedMs),
      acquire: summarize(throughput.acquire),
      errors: throughput.errors.count,
      errorCodes: throughput.errors.byCode,
    },
    contended: {
      clients: settings.clients,
      holdMs: settings.holdMs,
      durationMs: Math.round(contended.elapsedMs),
      acquisitions,
      acquisitionsPerSecond: perSecond(acquisitions, contended.elapsedMs),
      handoff: summarize(contended.handoff),
      shares: contended.perClient.map((n) =>
        acquisitions === 0 ? 0 : Math.round((n / acquisitions) * 1000) / 1000,
      ),
      errors: contended.errors.count,
      errorCodes: contended.errors.byCode,
    },
  };

  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : `${markdown(result)}\n`);
  if (htmlFile !== undefined) {
    writeFileSync(
      htmlFile,
      benchHtml(result, [
        {
          title: 'Sequential acquire and release',
          series: [
            { name: 'acquire', samplesMs: sequential.acquire, color: '#0969da' },
            { name: 'release', samplesMs: sequential.release, color: '#8250df' },
          ],
        },
        {
          title: `Acquire at concurrency ${settings.concurrency}`,
          series: [{ name: 'acquire', samplesMs: throughput.acquire, color: '#1a7f37' }],
        },
        {
          title: `Contended handoff, ${settings.clients} clients`,
          series: [{ name: 'handoff', samplesMs: contended.handoff, color: '#bc4c00' }],
        },
      ]),
    );
    process.stderr.write(`quorumlock: bench: wrote ${htmlFile}\n`);
  }
  return ExitCode.ok;
}

function perSecond(count: number, ms: number): number {
  return ms <= 0 ? 0 : Math.round((count / ms) * 1000 * 10) / 10;
}

// The progress line: rewritten in place on a terminal, one line per phase otherwise.
let lastPhase: string | undefined;
let lineOpen = false;

function progress(phase: string, fraction?: number): void {
  if (process.stderr.isTTY) {
    const pct =
      fraction === undefined ? '' : ` ${Math.min(100, Math.max(0, Math.round(fraction * 100)))}%`;
    process.stderr.write(`\r\x1b[Kquorumlock bench: ${phase}${pct}`);
    lineOpen = true;
  } else if (phase !== lastPhase) {
    process.stderr.write(`quorumlock bench: ${phase}\n`);
  }
  lastPhase = phase;
}

function progressLine(text: string): void {
  progress(text);
}

function endProgress(): void {
  if (lineOpen) process.stderr.write('\r\x1b[K');
  lineOpen = false;
  lastPhase = undefined;
}
