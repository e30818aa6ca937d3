/**
 * What `quorumlock bench` reports: latency summaries in milliseconds, the
 * JSON document `--json` prints, and the Markdown tables it prints otherwise.
 */

/** Percentiles of a set of latencies, all in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly minMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

/** One node's round-trip time (PING), or why it could not be measured. */
export interface NodeRtt {
  /** `host:port`, never with credentials. */
  readonly node: string;
  readonly ok: boolean;
  /** Undefined when the node did not answer. */
  readonly rtt?: LatencySummary;
  readonly error?: string;
}

/** The document `quorumlock bench --json` prints; docs/cli.md lists its fields. */
export interface BenchResult {
  readonly tool: 'quorumlock bench';
  /** Bumped when a field changes meaning or goes away. */
  readonly schema: 1;
  readonly version: string;
  /** ISO 8601 start of the run. */
  readonly date: string;
  readonly quick: boolean;
  /** `redis` for Redlock over N masters. */
  readonly backend: string;
  /** Node labels (`host:port`), in the order given. */
  readonly nodes: readonly string[];
  readonly quorum: number;
  readonly settings: {
    readonly samples: number;
    readonly durationMs: number;
    readonly concurrency: number;
    readonly clients: number;
    readonly holdMs: number;
    readonly ttlMs: number;
  };
  readonly rtt: {
    readonly nodes: readonly NodeRtt[];
    /**
     * The majority-th fastest node's median RTT: no acquire round can finish
     * sooner, since it needs that many answers. Null when too few nodes answered.
     */
    readonly physicalLimitMs: number | null;
  };
  /** One client, one lock at a time: acquire, then release, on the same resource. */
  readonly sequential: {
    readonly acquire: LatencySummary;
    readonly release: LatencySummary;
    readonly errors: number;
    /** The failures by error code (a LockError's `code`, else the error's name). */
    readonly errorCodes: Readonly<Record<string, number>>;
  };
  /** `concurrency` acquire/release loops on distinct resources for `durationMs`. */
  readonly throughput: {
    readonly concurrency: number;
    readonly durationMs: number;
    readonly cycles: number;
    readonly cyclesPerSecond: number;
    readonly acquire: LatencySummary;
    readonly errors: number;
    /** The failures by error code (a LockError's `code`, else the error's name). */
    readonly errorCodes: Readonly<Record<string, number>>;
  };
  /** `clients` independent clients taking turns on one resource for `durationMs`. */
  readonly contended: {
    readonly clients: number;
    readonly holdMs: number;
    readonly durationMs: number;
    readonly acquisitions: number;
    readonly acquisitionsPerSecond: number;
    /** From the start of one holder's release to the next holder's acquire returning. */
    readonly handoff: LatencySummary;
    /** Each client's share of the acquisitions (1/clients each when perfectly fair). */
    readonly shares: readonly number[];
    readonly errors: number;
    /** The failures by error code (a LockError's `code`, else the error's name). */
    readonly errorCodes: Readonly<Record<string, number>>;
  };
}

/** Percentiles by nearest rank (the rank's float error absorbed); an empty set gives zeros with count 0. */
export function summarize(samplesMs: readonly number[]): LatencySummary {
  if (samplesMs.length === 0) {
    return { count: 0, minMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, meanMs: 0 };
  }
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length - 1e-9) - 1)]!;
  const mean = sorted.reduce((sum, x) => sum + x, 0) / sorted.length;
  return {
    count: sorted.length,
    minMs: round(sorted[0]!),
    p50Ms: round(at(50)),
    p90Ms: round(at(90)),
    p99Ms: round(at(99)),
    p999Ms: round(at(99.9)),
    maxMs: round(sorted[sorted.length - 1]!),
    meanMs: round(mean),
  };
}

/** Microsecond precision is all a latency in ms needs. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** The Markdown tables printed on stdout. */
export function markdown(r: BenchResult): string {
  const lines: string[] = [];
  lines.push(
    `## quorumlock bench${r.quick ? ' (--quick)' : ''}`,
    '',
    `${r.backend}, ${r.nodes.length} node${r.nodes.length === 1 ? '' : 's'} (quorum ${r.quorum}), quorumlock ${r.version}, ${r.date}`,
    '',
  );
  if (r.rtt.nodes.length > 0) {
    lines.push('### Nodes', '', '| node | RTT p50 (ms) | RTT p99 (ms) |', '| --- | ---: | ---: |');
  }
  for (const n of r.rtt.nodes) {
    lines.push(
      n.ok && n.rtt
        ? `| ${n.node} | ${fmt(n.rtt.p50Ms)} | ${fmt(n.rtt.p99Ms)} |`
        : `| ${n.node} | unreachable: ${n.error ?? 'no answer'} | |`,
    );
  }
  lines.push(
    ...(r.rtt.nodes.length > 0 ? [''] : []),
    r.rtt.nodes.length === 0
      ? `Round trips and the physical limit are measured for Redis nodes only, not for ${r.backend}.`
      : r.rtt.physicalLimitMs === null
        ? 'Physical limit: unknown (too few nodes answered PING).'
        : `Physical limit: ${fmt(r.rtt.physicalLimitMs)} ms, the median RTT of the ${ordinal(r.quorum)} fastest node: no acquire can be faster.`,
    '',
    '### Latency (ms)',
    '',
    '| measure | count | p50 | p90 | p99 | p99.9 | max | mean |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('sequential acquire', r.sequential.acquire),
    row('sequential release', r.sequential.release),
    row(`acquire at concurrency ${r.throughput.concurrency}`, r.throughput.acquire),
    row(`contended handoff (${r.contended.clients} clients)`, r.contended.handoff),
    '',
    '### Throughput',
    '',
    '| measure | result | errors |',
    '| --- | ---: | ---: |',
    `| acquire+release cycles/s at concurrency ${r.throughput.concurrency} | ${r.throughput.cyclesPerSecond.toFixed(0)} | ${r.throughput.errors} |`,
    `| contended acquisitions/s (${r.contended.clients} clients, hold ${r.contended.holdMs} ms) | ${r.contended.acquisitionsPerSecond.toFixed(0)} | ${r.contended.errors} |`,
    `| contended shares, lowest–highest | ${pct(Math.min(...r.contended.shares))}–${pct(Math.max(...r.contended.shares))} | |`,
    '',
  );
  const errors = (['sequential', 'throughput', 'contended'] as const).flatMap((m) =>
    Object.entries(r[m].errorCodes).map(([code, n]) => `${m} ${code} ×${n}`),
  );
  if (errors.length > 0) lines.push(`Errors by code: ${errors.join(', ')}.`, '');
  return lines.join('\n');
}

function row(name: string, s: LatencySummary): string {
  return `| ${name} | ${s.count} | ${fmt(s.p50Ms)} | ${fmt(s.p90Ms)} | ${fmt(s.p99Ms)} | ${fmt(s.p999Ms)} | ${fmt(s.maxMs)} | ${fmt(s.meanMs)} |`;
}

/** Three significant digits, never exponent notation. */
export function fmt(ms: number): string {
  if (ms === 0) return '0';
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(2);
  return ms.toFixed(3);
}

function pct(share: number): string {
  return Number.isFinite(share) ? `${(share * 100).toFixed(0)}%` : 'n/a';
}

function ordinal(n: number): string {
  const suffix =
    n % 10 === 1 && n !== 11
      ? 'st'
      : n % 10 === 2 && n !== 12
        ? 'nd'
        : n % 10 === 3 && n !== 13
          ? 'rd'
          : 'th';
  return `${n}${suffix}`;
}
