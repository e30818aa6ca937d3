/**
 * The CLI on any backend: `--nodes` names Redis masters (Redlock, with its
 * own flags) or one URL of another backend (`zk://h1:2181,h2:2181/locks`,
 * `postgres://…`), which `connect()` opens. `status` on a non-Redis backend
 * prints that backend's own view of the lock.
 */
import type { LockProvider, LockState } from '../provider.js';
import { backendOf, connect } from '../provider.js';
import { Redlock } from '../redis/redlock.js';
import { type NodeSettings, redactUrl, redlockOptions, UsageError } from './args.js';

/** `redis`, `postgres`, `mysql` or `zookeeper`: the backend the node URLs name. */
export function backendOfNodes(urls: readonly string[]): string {
  return backendOf(urls[0] ?? '') ?? 'redis';
}

/**
 * The provider the settings name: a Redlock over the Redis URLs, or the
 * backend `connect()` opens for one other URL; Redis-only flags are refused there.
 */
export async function openCliProvider(settings: NodeSettings, ttl?: number): Promise<LockProvider> {
  const backend = backendOfNodes(settings.urls);
  if (backend === 'redis') return new Redlock(settings.urls, redlockOptions(settings, ttl));
  const redisOnly = [
    ['--quorum', settings.quorum],
    ['--key-prefix', settings.keyPrefix],
    ['--node-timeout', settings.nodeTimeout],
  ].find(([, value]) => value !== undefined);
  if (redisOnly) {
    throw new UsageError(`${redisOnly[0]} applies to redis:// nodes only, not to ${backend}`);
  }
  if (settings.urls.length !== 1) {
    throw new UsageError(`--nodes: give one ${backend} URL, got ${settings.urls.length}`);
  }
  return connect(settings.urls, ttl === undefined ? {} : { ttl });
}

/** `status`'s JSON output on a non-Redis backend. */
export interface ProviderStatusReport {
  readonly resource: string;
  readonly backend: string;
  /** The URL without credentials. */
  readonly url: string;
  /** The backend's view of the lock (holder, fence, session, waiting, …). */
  readonly state: LockState;
  readonly verdict: 'held' | 'free';
}

/** Inspects `resource` on `provider` and builds the report. */
export async function providerStatus(
  provider: LockProvider,
  settings: NodeSettings,
  resource: string,
): Promise<ProviderStatusReport> {
  const state = await provider.inspect(resource);
  return {
    resource,
    backend: backendOfNodes(settings.urls),
    url: redactUrl(settings.urls[0]!),
    state,
    verdict: state.holder === null ? 'free' : 'held',
  };
}

/** The report as `field: value` lines and a verdict line. */
export function formatProviderStatus(report: ProviderStatusReport): string {
  const lines = [`resource "${report.resource}" on ${report.backend} ${report.url}`];
  for (const [key, value] of Object.entries(report.state)) {
    if (key === 'resource') continue;
    lines.push(`  ${key.padEnd(10)} ${value === null ? '-' : String(value)}`);
  }
  lines.push(
    report.verdict === 'held' ? 'verdict: HELD' : 'verdict: FREE: an acquire would succeed now',
  );
  return lines.join('\n');
}
