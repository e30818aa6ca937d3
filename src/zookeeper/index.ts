/**
 * quorumlock/zookeeper: locks on one ZooKeeper ensemble, behind the same
 * LockProvider contract as Redlock and the SQL backends.
 *
 * ```ts
 * import { ZooKeeperLocks } from 'quorumlock/zookeeper';
 * const locks = new ZooKeeperLocks('zk://zk1:2181,zk2:2181,zk3:2181/locks', { ttl: 10_000 });
 * await locks.using('invoice:42', async (signal, lock) => work(signal, lock.fence));
 * ```
 *
 * Needs the `node-zookeeper-client` package (an optional peer dependency).
 */
import { type Clock, systemClock } from '../clock.js';
import { InvalidArgumentError } from '../errors.js';
import {
  BackendProvider,
  type LockProvider,
  type ProviderOptions,
  resolveProviderOptions,
} from '../provider.js';
import { ZkBackend, type ZkHold, type ZkLockState } from './backend.js';
import { loadDriver } from './client.js';
import { ZkSession } from './session.js';

export type { ZkLockState } from './backend.js';

/**
 * Options of a ZooKeeperLocks; all optional. `ttl` (ms, default 30 000) is the
 * session timeout asked of the ensemble, which clamps it to its own bounds
 * (2 to 20 ticks by default): a holder that stops hearing from the ensemble
 * loses its locks within 2/3 of it, before the server can expire the session.
 */
export type ZooKeeperOptions = ProviderOptions;

/** A parsed `zk://` URL. */
export interface ZooKeeperUrl {
  /** `host:port,host:port` (port 2181 when not given). */
  readonly hosts: string;
  /** Where the lock nodes live: the URL's path (created when missing), or `/quorumlock`. */
  readonly base: string;
}

/** The path used when a URL has none. */
export const DEFAULT_BASE = '/quorumlock';

/**
 * Parses `zk://host[:port][,host[:port]...][/chroot]`; throws
 * InvalidArgumentError on anything else, before any I/O.
 */
export function parseZooKeeperUrl(url: unknown): ZooKeeperUrl {
  if (typeof url !== 'string') {
    throw new InvalidArgumentError(`a ZooKeeper URL must be a string, got ${typeof url}`);
  }
  const match = /^zk:\/\/([^/?#@]+)(\/[^?#]*)?$/i.exec(url.trim());
  if (!match) {
    throw new InvalidArgumentError(
      `not a ZooKeeper URL: ${JSON.stringify(url)}; expected zk://host:port[,host:port...][/path] (no credentials, query or fragment)`,
    );
  }
  const hosts = match[1]!.split(',').map((h) => {
    const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(h.trim());
    const port = m?.[2] === undefined ? 2181 : Number(m[2]);
    if (!m || port < 1 || port > 65535) {
      throw new InvalidArgumentError(
        `bad ZooKeeper host ${JSON.stringify(h)} in ${JSON.stringify(url)}`,
      );
    }
    return `${m[1]}:${port}`;
  });
  const path = match[2] === undefined || match[2] === '/' ? DEFAULT_BASE : match[2];
  const parts = path.split('/').slice(1);
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p === 'zookeeper')) {
    throw new InvalidArgumentError(
      `bad ZooKeeper path ${JSON.stringify(path)}: no empty, ".", ".." or "zookeeper" parts, no trailing "/"`,
    );
  }
  return { hosts: hosts.join(','), base: path };
}

/**
 * Locks on a ZooKeeper ensemble (Apache Curator's recipe): ephemeral
 * sequential nodes, each waiter watching only its predecessor, fences from
 * the zxid that created the holder's node, and one session per provider.
 */
export class ZooKeeperLocks extends BackendProvider<ZkHold, ZkLockState> implements LockProvider {
  /** The ensemble's hosts and the base path of the lock nodes. */
  readonly url: ZooKeeperUrl;

  /** Opens nothing yet: the session starts with the first call. Throws InvalidArgumentError on bad input. */
  constructor(url: string, options?: ZooKeeperOptions, clock: Clock = systemClock) {
    const parsed = parseZooKeeperUrl(url);
    const { settings } = resolveProviderOptions(options, []);
    const session = new ZkSession({ hosts: parsed.hosts, sessionTimeout: settings.ttl, clock });
    const backend = new ZkBackend(session, {
      label: parsed.hosts,
      base: parsed.base,
      fencing: settings.fencing,
      clock,
    });
    super(backend, settings, clock);
    this.url = parsed;
  }
}

/**
 * `connect('zk://…')` lands here: checks the URL and that the driver is
 * installed (MissingDriverError otherwise), then returns the provider.
 */
export async function openProvider(
  urls: readonly string[],
  options?: object,
): Promise<ZooKeeperLocks> {
  if (urls.length !== 1) {
    throw new InvalidArgumentError(`a ZooKeeper provider takes one zk:// URL, got ${urls.length}`);
  }
  const locks = new ZooKeeperLocks(urls[0]!, options as ZooKeeperOptions);
  await loadDriver();
  return locks;
}
