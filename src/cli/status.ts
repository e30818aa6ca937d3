/**
 * `quorumlock status <resource>`: every node's view of a lock (holder,
 * remaining ttl, fence counter, reachable or not) and the quorum's verdict.
 */
import { Redlock } from '../redis/redlock.js';
import {
  LOCK_OPTIONS,
  LOCK_OPTIONS_HELP,
  nodeSettings,
  parseCommandArgs,
  redlockOptions,
  UsageError,
} from './args.js';
import {
  backendOfNodes,
  formatProviderStatus,
  openCliProvider,
  providerStatus,
} from './backends.js';
import { EXIT_CODE_HELP, ExitCode } from './exit.js';
import { judge, type NodeView, type Verdict } from './verdict.js';

/** Help text of `quorumlock status`. */
export const STATUS_HELP = `Usage: quorumlock status [options] <resource>

Shows, for every node, who holds the lock <resource>, its remaining ttl, the
fence counter and whether the node answered; then the quorum's verdict:
  held       one holder has it on a quorum of nodes
  free       a quorum of nodes has no holder: an acquire would succeed now
  blocked    neither (leftover keys or a split): free once enough keys expire
  no-quorum  too few nodes answered to say

Options:
  --json              print the result as JSON
${LOCK_OPTIONS_HELP}

${EXIT_CODE_HELP}
  status exits 0 whatever the verdict, and 69 for no-quorum.`;

const STATUS_OPTIONS = { ...LOCK_OPTIONS, json: { type: 'boolean' } } as const;

/** `status`'s JSON output. */
export interface StatusReport {
  readonly resource: string;
  readonly nodes: readonly {
    node: string;
    reachable: boolean;
    value: string | null;
    pttl: number | null;
    fence: number | null;
    error?: string;
  }[];
  readonly verdict: Verdict;
}

/** Runs `quorumlock status`; resolves with the exit code. */
export async function statusCommand(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const { values, positionals } = parseCommandArgs('status', argv, STATUS_OPTIONS);
  if (values.help) {
    process.stdout.write(`${STATUS_HELP}\n`);
    return ExitCode.ok;
  }
  if (positionals.length !== 1 || positionals[0] === '') {
    throw new UsageError(
      'status: give exactly one <resource>; usage: quorumlock status <resource>',
    );
  }
  const resource = positionals[0]!;
  const nodes = nodeSettings(values, env);
  if (backendOfNodes(nodes.urls) !== 'redis') {
    const provider = await openCliProvider(nodes);
    try {
      const report = await providerStatus(provider, nodes, resource);
      process.stdout.write(
        values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatProviderStatus(report)}\n`,
      );
      return ExitCode.ok;
    } finally {
      await provider.close();
    }
  }
  const redlock = new Redlock(nodes.urls, redlockOptions(nodes));
  try {
    const state = await redlock.inspect(resource);
    const report = statusReport(resource, state.nodes, state.quorum);
    process.stdout.write(
      values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`,
    );
    return report.verdict.state === 'no-quorum' ? ExitCode.noQuorum : ExitCode.ok;
  } finally {
    await redlock.close();
  }
}

/** Builds the report from the nodes' views. */
export function statusReport(
  resource: string,
  views: readonly NodeView[],
  quorum: number,
): StatusReport {
  return {
    resource,
    nodes: views.map((v) => ({
      node: v.node,
      reachable: v.error === undefined,
      value: v.value,
      pttl: v.pttl,
      fence: v.fence,
      ...(v.error === undefined ? {} : { error: errorText(v.error) }),
    })),
    verdict: judge(views, quorum),
  };
}

/** The report as a table and a verdict line. */
export function formatStatus(report: StatusReport): string {
  const v = report.verdict;
  const rows = report.nodes.map((n) => [
    n.node,
    n.reachable ? 'yes' : 'NO',
    n.reachable ? (n.value === null ? '-' : shortValue(n.value, v.holder)) : '?',
    n.reachable && n.value !== null ? ttlText(n.pttl) : '-',
    n.fence === null ? '-' : String(n.fence),
    n.error ?? '',
  ]);
  const header = ['NODE', 'REACHABLE', 'HOLDER', 'TTL', 'FENCE', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const out = [`resource "${report.resource}" on ${report.nodes.length} nodes, quorum ${v.quorum}`];
  out.push(line(header), ...rows.map(line));
  out.push(verdictText(v));
  return out.join('\n');
}

function verdictText(v: Verdict): string {
  const fence = v.maxFence === null ? '' : `; highest fence ${v.maxFence}`;
  switch (v.state) {
    case 'held':
      return (
        `verdict: HELD by ${shortValue(v.holder!, undefined)} on ${v.holdingNodes} of ${v.reachable} reachable nodes, ` +
        `${v.expiresInMs! < 0 ? 'with no expiry' : `expires in ${v.expiresInMs} ms unless renewed`}${fence}`
      );
    case 'free':
      return `verdict: FREE on a quorum (${v.reachable} reachable)${fence}`;
    case 'blocked':
      return (
        `verdict: BLOCKED: no holder has a quorum, nor is a quorum free` +
        (v.expiresInMs === undefined ? '' : `; a quorum frees in ${v.expiresInMs} ms`) +
        fence
      );
    case 'no-quorum':
      return `verdict: NO QUORUM: only ${v.reachable} nodes answered, ${v.quorum} needed`;
  }
}

/** Values are long random strings: the first 12 characters identify a holder; `*` marks the quorum's holder. */
function shortValue(value: string, holder: string | undefined): string {
  const short = value.length > 14 ? `${value.slice(0, 12)}…` : value;
  return value === holder ? `${short}*` : short;
}

function ttlText(pttl: number | null): string {
  if (pttl === null || pttl < 0) return 'no expiry';
  return `${pttl} ms`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
