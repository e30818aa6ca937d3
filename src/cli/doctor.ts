/**
 * `quorumlock doctor`: checks every node against the safety assumptions
 * (docs/safety.md §2) by talking to it directly with ioredis, and says how to fix
 * what is wrong. It only reads, apart from SCRIPT LOAD of the library's own
 * scripts.
 */
import { Redis } from 'ioredis';
import { scripts } from '../redis/scripts/index.js';
import {
  NODE_OPTIONS,
  NODE_OPTIONS_HELP,
  nodeLabel,
  nodeSettings,
  parseCommandArgs,
  parseDuration,
  UsageError,
} from './args.js';
import { backendOfNodes } from './backends.js';
import { explainConnectError } from './connect-error.js';
import { runSqlDoctor } from './doctor-sql.js';
import { runZooKeeperDoctor } from './doctor-zookeeper.js';
import { EXIT_CODE_HELP, ExitCode } from './exit.js';

/** Outcome of one check. */
export type CheckStatus = 'pass' | 'warn' | 'fail';

/** One check's result, with the fix when it did not pass. */
export interface Check {
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  readonly fix?: string;
}

/** The checks of one node. */
export interface NodeReport {
  /** `host:port`, without credentials. */
  readonly node: string;
  readonly checks: Check[];
}

/** Everything doctor found. `ok` is false when any check failed. */
export interface DoctorReport {
  readonly quorum: number;
  readonly nodes: NodeReport[];
  /** Checks across nodes: quorum size, duplicates, clocks. */
  readonly ensemble: Check[];
  readonly counts: Record<CheckStatus, number>;
  readonly ok: boolean;
}

/** Options of runDoctor. */
export interface DoctorOptions {
  /** Per-node connect and command timeout in ms. */
  readonly timeoutMs: number;
  /** Clock spread between nodes above which the clock check warns, in ms. */
  readonly clockWarnMs: number;
  /** Majority size; default ⌊N/2⌋+1. */
  readonly quorum?: number;
  /** Key prefix used for the harmless EVALSHA probe. */
  readonly keyPrefix: string;
}

/** What one node told us; undefined fields could not be read. */
interface Probe {
  readonly node: string;
  readonly checks: Check[];
  reachable: boolean;
  runId?: string;
  role?: string;
  replId?: string;
  masterReplId?: string;
  masterLink?: string;
  connectedReplicas?: number;
  /** Server time minus local time in ms, measured at the midpoint of the fastest TIME call. */
  clockOffsetMs?: number;
  clockUncertaintyMs?: number;
  /** The node runs in cluster mode (cluster_enabled:1). */
  cluster?: boolean;
}

/** Runs every check on every node, in parallel across nodes. */
export async function runDoctor(
  urls: readonly string[],
  options: DoctorOptions,
): Promise<DoctorReport> {
  const quorum = options.quorum ?? Math.floor(urls.length / 2) + 1;
  const probes = await Promise.all(urls.map((url) => probeNode(url, options)));
  const ensemble = crossChecks(probes, quorum, options);
  const all = [...probes.flatMap((p) => p.checks), ...ensemble];
  const counts = { pass: 0, warn: 0, fail: 0 };
  for (const c of all) counts[c.status]++;
  return {
    quorum,
    nodes: probes.map((p) => ({ node: p.node, checks: p.checks })),
    ensemble,
    counts,
    ok: counts.fail === 0,
  };
}

async function probeNode(url: string, options: DoctorOptions): Promise<Probe> {
  const probe: Probe = { node: nodeLabel(url), checks: [], reachable: false };
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: options.timeoutMs,
    commandTimeout: options.timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // Connection errors are reported by the reachability check; ioredis must not print them.
  // The last one says why (a certificate, a reset), where connect() only says "closed".
  let lastError: unknown;
  client.on('error', (err) => {
    lastError = err;
  });
  try {
    await checkReachable(client, probe, url, () => lastError, options.timeoutMs);
    if (!probe.reachable) return probe;
    const info = parseInfo(String(await client.info()));
    checkRole(info, probe);
    await checkCluster(client, info, probe);
    checkEviction(info, probe);
    await checkPersistence(client, info, probe);
    await measureClock(client, probe);
    await checkScripts(client, probe, options.keyPrefix);
  } catch (err) {
    probe.checks.push({
      name: 'probe',
      status: 'fail',
      detail: `stopped checking after an error: ${message(err)}`,
      fix: 'check the ACL user has the commands docs/operations.md lists',
    });
  } finally {
    client.disconnect();
  }
  return probe;
}

async function checkReachable(
  client: Redis,
  probe: Probe,
  url: string,
  lastError: () => unknown,
  timeoutMs: number,
): Promise<void> {
  try {
    await client.connect();
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await client.ping();
      samples.push(performance.now() - started);
    }
    samples.sort((a, b) => a - b);
    const median = samples[2]!;
    probe.reachable = true;
    probe.checks.push({
      name: 'reachable',
      status: 'pass',
      detail: `PING median ${fmtMs(median)}, max ${fmtMs(samples[4]!)}`,
    });
  } catch (err) {
    const { detail, fix } = await explainConnectError(url, lastError() ?? err, timeoutMs);
    probe.checks.push({ name: 'reachable', status: 'fail', detail, fix });
  }
}

function checkRole(info: Map<string, string>, probe: Probe): void {
  probe.runId = info.get('run_id');
  probe.role = info.get('role');
  probe.replId = info.get('master_replid');
  probe.connectedReplicas = Number(info.get('connected_slaves') ?? 0);
  if (probe.role === 'master') {
    probe.checks.push({
      name: 'role',
      status: 'pass',
      detail: `master, redis ${info.get('redis_version') ?? '?'}, run_id ${probe.runId?.slice(0, 8) ?? '?'}`,
    });
    if (probe.connectedReplicas > 0) {
      probe.checks.push({
        name: 'replicas',
        status: 'warn',
        detail: `${probe.connectedReplicas} replica(s) attached; a failover to a replica can lose locks (replication is asynchronous)`,
        fix: 'do not fail over lock nodes to replicas; Redlock gets its fault tolerance from independent masters',
      });
    }
    return;
  }
  // A replica's master_replid is its master's replication id, which links it to a listed node.
  probe.masterReplId = info.get('master_replid');
  probe.masterLink = `${info.get('master_host') ?? '?'}:${info.get('master_port') ?? '?'}`;
  probe.checks.push({
    name: 'role',
    status: 'fail',
    detail: `replica of ${probe.masterLink}; a replica is read-only and not independent`,
    fix: 'point quorumlock at independent masters only: REPLICAOF NO ONE on this node, or list another master',
  });
}

function checkEviction(info: Map<string, string>, probe: Probe): void {
  const policy = info.get('maxmemory_policy');
  const maxmemory = Number(info.get('maxmemory') ?? 0);
  const fix =
    'CONFIG SET maxmemory-policy noeviction, and set maxmemory-policy noeviction in redis.conf';
  if (policy === undefined) {
    probe.checks.push({
      name: 'eviction',
      status: 'warn',
      detail: 'maxmemory_policy not in INFO',
      fix,
    });
  } else if (policy === 'noeviction') {
    probe.checks.push({ name: 'eviction', status: 'pass', detail: 'maxmemory-policy noeviction' });
  } else if (maxmemory === 0) {
    probe.checks.push({
      name: 'eviction',
      status: 'warn',
      detail: `maxmemory-policy ${policy}; no maxmemory is set, so nothing is evicted yet, but setting one would evict lock keys`,
      fix,
    });
  } else {
    probe.checks.push({
      name: 'eviction',
      status: 'fail',
      detail: `maxmemory-policy ${policy} with maxmemory ${maxmemory} bytes can evict a held lock or its fence counter`,
      fix,
    });
  }
}

async function checkPersistence(
  client: Redis,
  info: Map<string, string>,
  probe: Probe,
): Promise<void> {
  const aof = info.get('aof_enabled') === '1';
  let fsync: string | undefined;
  try {
    const reply = (await client.config('GET', 'appendfsync')) as string[];
    fsync = reply[1];
  } catch {
    // CONFIG may be denied by ACL or renamed; the check says what it could not see.
  }
  const delayed = 'or delay every restart by more than the longest lock TTL';
  if (!aof) {
    probe.checks.push({
      name: 'persistence',
      status: 'warn',
      detail: 'appendonly no: after a restart this node forgets held locks and fence counters',
      fix: `CONFIG SET appendonly yes and CONFIG SET appendfsync always (and in redis.conf), ${delayed}`,
    });
  } else if (fsync === 'always') {
    probe.checks.push({
      name: 'persistence',
      status: 'pass',
      detail: 'appendonly yes, appendfsync always',
    });
  } else if (fsync === undefined) {
    probe.checks.push({
      name: 'persistence',
      status: 'warn',
      detail: 'appendonly yes, but appendfsync could not be read (CONFIG GET denied?)',
      fix: `make sure appendfsync is always, ${delayed}`,
    });
  } else {
    probe.checks.push({
      name: 'persistence',
      status: 'warn',
      detail: `appendonly yes, appendfsync ${fsync}: a crash can lose the last writes, locks and fence counters included`,
      fix: `CONFIG SET appendfsync always (and in redis.conf), ${delayed}`,
    });
  }
}

/** Takes the TIME sample with the smallest round trip; its midpoint bounds the offset by ± rtt/2. */
async function measureClock(client: Redis, probe: Probe): Promise<void> {
  let best: { offset: number; rtt: number } | undefined;
  for (let i = 0; i < 5; i++) {
    const before = performance.timeOrigin + performance.now();
    const [sec, usec] = (await client.time()) as [string | number, string | number];
    const after = performance.timeOrigin + performance.now();
    const server = Number(sec) * 1000 + Number(usec) / 1000;
    const rtt = after - before;
    if (!best || rtt < best.rtt) best = { offset: server - (before + after) / 2, rtt };
  }
  probe.clockOffsetMs = best!.offset;
  probe.clockUncertaintyMs = best!.rtt / 2;
}

/**
 * A node of a Redis Cluster holds only its own slots' keys: listed as one of
 * the independent masters it answers MOVED for every other key.
 */
async function checkCluster(client: Redis, info: Map<string, string>, probe: Probe): Promise<void> {
  if (info.get('cluster_enabled') !== '1') return;
  probe.cluster = true;
  const clusterInfo = parseInfo(String(await client.cluster('INFO')));
  const state = clusterInfo.get('cluster_state') ?? '?';
  const served = Number(clusterInfo.get('cluster_slots_ok') ?? 0);
  probe.checks.push({
    name: 'cluster',
    status: 'fail',
    detail: `this node is part of a Redis Cluster (state ${state}, ${served} of 16384 slots served): as one of the independent masters it holds only its own slots' keys and answers MOVED for the rest`,
    fix: 'pass the whole cluster to the library as one node, new Redlock([new Cluster([...]), ...]), and keep the resources of one lock in one hash slot with a hash tag ({order:7}:a, {order:7}:b); the CLI takes single masters only',
  });
  if (state !== 'ok' || served < 16384) {
    probe.checks.push({
      name: 'cluster-slots',
      status: 'fail',
      detail: `cluster_state ${state}: ${16384 - served} of 16384 hash slots are not served, so locks on resources in those slots fail`,
      fix: 'assign every slot to a running master (redis-cli --cluster check, then --cluster fix)',
    });
  }
}

async function checkScripts(client: Redis, probe: Probe, keyPrefix: string): Promise<void> {
  const bad: string[] = [];
  for (const script of Object.values(scripts)) {
    try {
      const sha = String(await client.script('LOAD', script.lua));
      if (sha !== script.sha) bad.push(`${script.name}: node returned sha ${sha}`);
    } catch (err) {
      bad.push(`${script.name}: ${message(err)}`);
    }
  }
  // A cluster node answers MOVED for a key of another node's slot: the probe proves nothing there.
  if (bad.length === 0 && !probe.cluster) {
    // EVALSHA is what the library sends; the read-only inspect script proves it is allowed.
    try {
      const key = `${keyPrefix}{quorumlock-doctor}`;
      await client.evalsha(scripts.inspect.sha, 2, key, `${key}:fence`);
    } catch (err) {
      bad.push(`EVALSHA: ${message(err)}`);
    }
  }
  probe.checks.push(
    bad.length === 0
      ? {
          name: 'scripts',
          status: 'pass',
          detail: `${Object.keys(scripts).length} scripts loaded${probe.cluster ? '' : ', EVALSHA allowed'}`,
        }
      : {
          name: 'scripts',
          status: 'fail',
          detail: bad.join('; '),
          fix: 'allow EVAL, EVALSHA and SCRIPT LOAD for the lock user (see docs/operations.md) and enable Lua scripting',
        },
  );
}

function crossChecks(probes: Probe[], quorum: number, options: DoctorOptions): Check[] {
  const checks: Check[] = [];
  const n = probes.length;

  // The same server listed twice counts twice towards the quorum: a silent majority of one.
  const byRunId = new Map<string, Probe[]>();
  for (const p of probes) {
    if (p.runId) byRunId.set(p.runId, [...(byRunId.get(p.runId) ?? []), p]);
  }
  const duplicates = [...byRunId.values()].filter((group) => group.length > 1);
  for (const group of duplicates) {
    const names = group.map((p) => p.node).join(', ');
    for (const p of group) {
      p.checks.push({
        name: 'distinct',
        status: 'fail',
        detail: `same server as ${group
          .filter((q) => q !== p)
          .map((q) => q.node)
          .join(', ')} (one run_id)`,
        fix: `list each server once; ${names} are one redis-server`,
      });
    }
  }

  for (const p of probes) {
    if (p.role === undefined || p.role === 'master') continue;
    // Match by replication id once synced, by address while the link is still coming up.
    const master = probes.find(
      (q) =>
        q !== p && q.role === 'master' && (q.replId === p.masterReplId || q.node === p.masterLink),
    );
    if (master) {
      p.checks.push({
        name: 'independent',
        status: 'fail',
        detail: `replicates from listed node ${master.node}: the two are not independent`,
        fix: `REPLICAOF NO ONE on ${p.node}, or replace it with an independent master`,
      });
    }
  }

  const usable = probes.filter((p) => p.reachable && p.checks.every((c) => c.status !== 'fail'));
  checks.push(
    usable.length >= quorum
      ? {
          name: 'quorum',
          status: 'pass',
          detail: `${usable.length} of ${n} nodes pass every check; quorum is ${quorum}`,
        }
      : {
          name: 'quorum',
          status: 'fail',
          detail: `only ${usable.length} of ${n} nodes pass every check; quorum needs ${quorum}`,
          fix: 'fix the failing nodes above',
        },
  );
  if (n < 3) {
    checks.push({
      name: 'size',
      status: 'warn',
      detail: `${n} node(s): no node may fail without stopping locking`,
      fix: 'use 3 or 5 independent masters',
    });
  } else if (n % 2 === 0) {
    checks.push({
      name: 'size',
      status: 'warn',
      detail: `${n} nodes tolerate as few failures as ${n - 1} do`,
      fix: `use an odd number of nodes (${n - 1} or ${n + 1})`,
    });
  }

  const timed = probes.filter((p) => p.clockOffsetMs !== undefined);
  if (timed.length >= 2) {
    const offsets = timed.map((p) => p.clockOffsetMs!);
    const spread = Math.max(...offsets) - Math.min(...offsets);
    const uncertainty = Math.max(...timed.map((p) => p.clockUncertaintyMs!)) * 2;
    const detail =
      `server clocks differ by ${fmtMs(spread)} (±${fmtMs(uncertainty)}); offsets from this host: ` +
      timed.map((p) => `${p.node} ${signed(p.clockOffsetMs!)}`).join(', ');
    checks.push(
      spread - uncertainty > options.clockWarnMs
        ? {
            name: 'clocks',
            status: 'warn',
            detail,
            fix: 'run NTP (chrony or ntpd) on every node, slewing rather than stepping the clock',
          }
        : { name: 'clocks', status: 'pass', detail },
    );
  }
  return checks;
}

/** Parses INFO output into field → value. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return fields;
}

/** The report as aligned pass / warn / fail lines, with a fix line under each problem. */
export function formatDoctor(report: DoctorReport): string {
  const lines: string[] = [];
  const width = 12;
  const emit = (c: Check) => {
    lines.push(`  ${c.status.padEnd(4)}  ${c.name.padEnd(width)} ${c.detail}`);
    if (c.fix && c.status !== 'pass') lines.push(`        ${''.padEnd(width)} fix: ${c.fix}`);
  };
  for (const node of report.nodes) {
    lines.push(node.node);
    node.checks.forEach(emit);
  }
  lines.push(`all ${report.nodes.length} nodes`);
  report.ensemble.forEach(emit);
  const { pass, warn, fail } = report.counts;
  lines.push(
    `${fail === 0 ? 'ok' : 'FAILED'}: ${pass} pass, ${warn} warn, ${fail} fail` +
      (fail === 0 && warn > 0 ? ' (warnings weaken a safety assumption; see the fixes)' : ''),
  );
  return lines.join('\n');
}

function fmtMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${Math.round(ms)} ms`;
}

function signed(ms: number): string {
  return `${ms >= 0 ? '+' : '-'}${fmtMs(Math.abs(ms))}`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Help text of `quorumlock doctor`. */
export const DOCTOR_HELP = `Usage: quorumlock doctor [options]

Checks every node against the assumptions Redlock's safety rests on and
prints pass / warn / fail for each check, with the fix:
  reachable     the node answers; PING latency
  role          a master, not a replica (read-only, and not independent)
  distinct      no server listed twice (same run_id)
  independent   not replicating from another listed node
  eviction      maxmemory-policy noeviction (evicting a lock key breaks it)
  persistence   appendonly yes + appendfsync always (or delayed restarts)
  scripts       the lock scripts load (SCRIPT LOAD) and run (EVALSHA)
  clocks        server clocks (TIME) agree within --clock-warn
  quorum        enough nodes pass for a majority; an odd number of nodes
On a postgres:// or mysql:// URL it checks instead: reachable, primary (a
writable primary), session (a lock taken in one statement is still held in
the next: no transaction-mode pooler such as PgBouncer pool_mode=transaction),
fence table (exists and usable, or this role can create it), dead holder
(PostgreSQL: the server ends vanished sessions soon), many locks (MySQL:
several locks per session).

Options:
  --json                 print the report as JSON
  --timeout DURATION     per-node connect and command timeout (default 2s)
  --clock-warn DURATION  warn when server clocks differ by more (default 500ms)
  --ttl DURATION         zk:// only: the ttl (session timeout) to check against
                         the servers' bounds (default 30s)
${NODE_OPTIONS_HELP}

${EXIT_CODE_HELP}
  doctor exits 0 when no check failed (warnings allowed) and 1 otherwise.`;

const DOCTOR_OPTIONS = {
  ...NODE_OPTIONS,
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  'clock-warn': { type: 'string' },
  ttl: { type: 'string' },
} as const;

/** Runs `quorumlock doctor`; resolves with the exit code. */
export async function doctorCommand(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const { values, positionals } = parseCommandArgs('doctor', argv, DOCTOR_OPTIONS);
  if (values.help) {
    process.stdout.write(`${DOCTOR_HELP}\n`);
    return ExitCode.ok;
  }
  if (positionals.length > 0) {
    throw new UsageError(`doctor: unexpected argument "${positionals[0]}"`);
  }
  const nodes = nodeSettings(values, env);
  const timeoutMs =
    values.timeout === undefined ? 2000 : parseDuration(values.timeout, '--timeout');
  if (timeoutMs === 0) throw new UsageError('--timeout must be more than 0');
  const backend = backendOfNodes(nodes.urls);
  if (backend !== 'redis') {
    const ttl = values.ttl === undefined ? 30_000 : parseDuration(values.ttl, '--ttl');
    const report =
      backend === 'zookeeper'
        ? await runZooKeeperDoctor(nodes.urls[0]!, { timeoutMs, ttl })
        : await runSqlDoctor(nodes.urls[0]!, { timeoutMs });
    process.stdout.write(
      values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`,
    );
    return report.ok ? ExitCode.ok : ExitCode.failure;
  }
  const clockWarnMs =
    values['clock-warn'] === undefined ? 500 : parseDuration(values['clock-warn'], '--clock-warn');
  const report = await runDoctor(nodes.urls, {
    timeoutMs,
    clockWarnMs,
    keyPrefix: nodes.keyPrefix ?? 'quorumlock:',
    ...(nodes.quorum === undefined ? {} : { quorum: nodes.quorum }),
  });
  process.stdout.write(
    values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`,
  );
  return report.ok ? ExitCode.ok : ExitCode.failure;
}
