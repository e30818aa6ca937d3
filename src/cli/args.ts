/**
 * Command-line values: durations, node lists and the usage error that maps
 * to exit code 64. Everything here is pure, so it is checked without Redis.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { RedlockOptions } from '../options.js';
import { backendOf, splitNodeList } from '../provider.js';

/** A mistake in how the command was called; the CLI exits 64 with the message. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The longest duration accepted, in ms: the largest delay a Node timer can wait. */
export const MAX_DURATION_MS = 2_147_483_647;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses `500ms`, `30s`, `2m`, `1h`, `1.5s` or plain milliseconds (`250`)
 * into whole milliseconds. Throws UsageError naming `flag` for anything else,
 * including negative values, fractions of a millisecond and values above
 * MAX_DURATION_MS.
 */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) {
    throw new UsageError(
      `${flag}: "${text}" is not a duration; use e.g. 500ms, 30s, 2m or plain milliseconds`,
    );
  }
  const ms = Number(match[1]) * UNIT_MS[match[2] ?? 'ms']!;
  // Rounding absorbs binary float error (1.1s = 1100.0000000000002 ms) while a
  // genuine sub-millisecond part (0.5ms) is still rejected below.
  const rounded = Math.round(ms);
  if (Math.abs(ms - rounded) > 1e-6) {
    throw new UsageError(`${flag}: "${text}" is not a whole number of milliseconds`);
  }
  if (rounded > MAX_DURATION_MS) {
    throw new UsageError(`${flag}: "${text}" is too long; the limit is about 24 days`);
  }
  return rounded;
}

/** Parses `--wait`: a duration, or `forever` (returned as `Infinity`). */
export function parseWait(text: string): number {
  return text.trim() === 'forever' ? Number.POSITIVE_INFINITY : parseDuration(text, '--wait');
}

/**
 * Parses a positive whole number (such as `--quorum` or `--workers`);
 * throws UsageError naming `flag` otherwise.
 */
export function parsePositiveInt(text: string, flag: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${flag}: "${text}" is not a positive whole number`);
  }
  return Number(text);
}

/**
 * The node list from `--nodes` or, when that is absent, the
 * QUORUMLOCK_NODES environment variable: comma-separated `redis://` or
 * `rediss://` URLs, as the library takes them (a bare `host:port` is refused,
 * as the library refuses it). Throws UsageError when neither gives any node or
 * an entry is malformed.
 */
export function resolveNodes(flag: string | undefined, env: NodeJS.ProcessEnv): string[] {
  const source = flag ?? env.QUORUMLOCK_NODES;
  const from = flag === undefined ? 'QUORUMLOCK_NODES' : '--nodes';
  if (source === undefined || source.trim() === '') {
    throw new UsageError(
      'no Redis nodes given: pass --nodes redis://host:port,... or set QUORUMLOCK_NODES',
    );
  }
  // A zk:// URL lists its servers with commas: it is one entry, never split.
  const entries = splitNodeList(source);
  if (entries.length === 0) throw new UsageError(`${from}: no node URLs in "${source}"`);
  return entries.map((entry) => normalizeNode(entry, from));
}

function normalizeNode(entry: string, from: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) {
    const shown = redactUrl(`redis://${entry}`);
    throw new UsageError(
      `${from}: "${shown.slice('redis://'.length)}" has no scheme; write ${shown} (or rediss:// for TLS)`,
    );
  }
  const url = entry;
  const backend = backendOf(entry);
  // Other backends' URLs are checked by their own parser when connect() opens them.
  if (backend !== undefined && backend !== 'redis') return url;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${from}: "${redactUrl(entry)}" is not a node URL (redis://host:port)`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new UsageError(
      `${from}: "${redactUrl(entry)}" must use redis:// or rediss:// (TLS), not ${parsed.protocol}//`,
    );
  }
  if (parsed.hostname === '') throw new UsageError(`${from}: "${redactUrl(entry)}" has no host`);
  return url;
}

/** `url` with any password replaced by `***`, safe to print. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@');
}

/** A short label for a node URL, `host:port`, with no credentials. */
export function nodeLabel(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '6379'}`;
  } catch {
    return redactUrl(url);
  }
}

/** What parseCommandArgs returns for `options`. */
export type ParsedCommandArgs<T extends NonNullable<ParseArgsConfig['options']>> = ReturnType<
  typeof parseArgs<{
    args: string[];
    options: T;
    allowPositionals: true;
    strict: true;
    tokens: true;
  }>
>;

/**
 * node:util parseArgs in strict mode, with its errors turned into
 * UsageError so they exit 64 with the command's name in the message.
 */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: readonly string[],
  options: T,
): ParsedCommandArgs<T> {
  try {
    return parseArgs({
      args: [...args],
      options,
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new UsageError(`${command}: ${message}`);
  }
}

/** The options every command that talks to the nodes accepts. */
export const NODE_OPTIONS = {
  nodes: { type: 'string' },
  quorum: { type: 'string' },
  'key-prefix': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The help lines of NODE_OPTIONS. */
export const NODE_OPTIONS_HELP = `  --nodes URL,...     Redis masters: redis://[user:pass@]host:port or rediss:// (TLS);
                      default: the QUORUMLOCK_NODES environment variable
  --quorum N          nodes that must agree (default: a majority, ⌊N/2⌋+1)
  --key-prefix P      prefix of the lock keys (default: quorumlock:)
  -h, --help          show this help`;

/** NODE_OPTIONS plus what commands that take or read locks accept. */
export const LOCK_OPTIONS = {
  ...NODE_OPTIONS,
  'node-timeout': { type: 'string' },
} as const;

/** The help lines of LOCK_OPTIONS. */
export const LOCK_OPTIONS_HELP = `${NODE_OPTIONS_HELP.replace(/\n {2}-h, --help.*$/, '')}
  --node-timeout D    deadline of each call to one node (default: learned from
                      each node's round trips, 1s until measured, at most ttl/4)
  -h, --help          show this help`;

/** Where and how to reach the nodes, from NODE_OPTIONS (or LOCK_OPTIONS) values. */
export interface NodeSettings {
  readonly urls: string[];
  readonly quorum: number | undefined;
  readonly keyPrefix: string | undefined;
  /** Per-call deadline in ms; undefined for the library's default. */
  readonly nodeTimeout: number | undefined;
}

/** The Redlock options these settings ask for (only those given). */
export function redlockOptions(settings: NodeSettings, ttl?: number): RedlockOptions {
  return {
    ...(ttl === undefined ? {} : { ttl }),
    ...(settings.quorum === undefined ? {} : { quorum: settings.quorum }),
    ...(settings.keyPrefix === undefined ? {} : { keyPrefix: settings.keyPrefix }),
    ...(settings.nodeTimeout === undefined ? {} : { nodeTimeout: settings.nodeTimeout }),
  };
}

/** Reads NODE_OPTIONS values (and QUORUMLOCK_NODES); throws UsageError on bad ones. */
export function nodeSettings(
  values: { nodes?: string; quorum?: string; 'key-prefix'?: string; 'node-timeout'?: string },
  env: NodeJS.ProcessEnv,
): NodeSettings {
  const urls = resolveNodes(values.nodes, env);
  const quorum =
    values.quorum === undefined ? undefined : parsePositiveInt(values.quorum, '--quorum');
  if (quorum !== undefined && (quorum <= urls.length / 2 || quorum > urls.length)) {
    throw new UsageError(
      `--quorum ${quorum} must be more than half of the ${urls.length} nodes and at most ${urls.length}`,
    );
  }
  const timeout = values['node-timeout'];
  const nodeTimeout = timeout === undefined ? undefined : parseDuration(timeout, '--node-timeout');
  if (nodeTimeout === 0) throw new UsageError('--node-timeout must be more than 0');
  return { urls, quorum, keyPrefix: values['key-prefix'], nodeTimeout };
}
