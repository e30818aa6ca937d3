/**
 * Turning the `nodes` argument of `new Redlock` into LockNodes: URLs are
 * validated before any connection is opened; ioredis instances are used as
 * given and stay the caller's.
 */
import { Cluster, Redis } from 'ioredis';
import { InvalidArgumentError } from '../errors.js';
import { show } from '../options.js';
import { RedisNode } from './node.js';

/** A node as the caller names it: a `redis://` / `rediss://` URL, or an ioredis Redis or Cluster. */
export type NodeSpec = string | Redis | Cluster;

interface ParsedUrl {
  readonly url: string;
  /** host:port: one Redis server, whatever its database. */
  readonly server: string;
  /** The node's label: host:port, plus /db when not 0. */
  readonly id: string;
}

/** Validates every node spec; throws InvalidArgumentError before anything connects. */
export function checkNodeSpecs(nodes: unknown): readonly NodeSpec[] {
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new InvalidArgumentError(
      `nodes must be a non-empty array of redis:// URLs or ioredis instances, got ${show(nodes)}`,
    );
  }
  const ids = new Set<string>();
  const instances = new Set<unknown>();
  for (const [i, node] of nodes.entries()) {
    if (typeof node === 'string') {
      const { server } = parseUrl(node, i);
      if (ids.has(server)) {
        throw new InvalidArgumentError(
          `nodes[${i}] names server ${server} again; every node must be its own Redis master (two databases of one server are not independent)`,
        );
      }
      ids.add(server);
    } else if (node instanceof Redis || node instanceof Cluster || isRedisLike(node)) {
      if (instances.has(node))
        throw new InvalidArgumentError(`nodes[${i}] is the same instance as an earlier node`);
      instances.add(node);
    } else {
      throw new InvalidArgumentError(
        `nodes[${i}] must be a redis:// or rediss:// URL or an ioredis Redis/Cluster, got ${show(node)}`,
      );
    }
  }
  return nodes as NodeSpec[];
}

/** Opens (for URLs) or wraps (for instances) one RedisNode per spec. */
export function openNodes(specs: readonly NodeSpec[], connectWaitMs: number): RedisNode[] {
  return specs.map((spec, i) => {
    if (typeof spec === 'string') {
      const { url, id } = parseUrl(spec, i);
      const client = new Redis(url, {
        // Fail fast: never queue commands for a node that is not connected,
        // never replay a lock command after a reconnect.
        enableOfflineQueue: false,
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: 0,
        // Auto-pipelining costs more CPU per call than it saves at the
        // handful of calls a round has in flight per node.
        enableAutoPipelining: false,
        connectTimeout: Math.max(1000, connectWaitMs),
        retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
        lazyConnect: false,
      });
      // Connection errors surface as node outcomes; keep ioredis from logging them.
      client.on('error', () => {});
      return new RedisNode(id, client, true, connectWaitMs);
    }
    return new RedisNode(instanceId(spec, i), spec, false, connectWaitMs);
  });
}

function parseUrl(text: string, index: number): ParsedUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(`nodes[${index}] is not a valid URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new InvalidArgumentError(
      `nodes[${index}] must use redis:// or rediss://, got ${JSON.stringify(url.protocol)} in ${JSON.stringify(text)}`,
    );
  }
  if (!url.hostname)
    throw new InvalidArgumentError(`nodes[${index}] has no host: ${JSON.stringify(text)}`);
  const port = url.port === '' ? 6379 : Number(url.port);
  const db = url.pathname === '' || url.pathname === '/' ? 0 : Number(url.pathname.slice(1));
  if (!Number.isInteger(db) || db < 0) {
    throw new InvalidArgumentError(
      `nodes[${index}] has an invalid database ${JSON.stringify(url.pathname.slice(1))}; use /0, /1, ...`,
    );
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const server = `${host}:${port}`;
  return { url: text, server, id: db === 0 ? server : `${server}/${db}` };
}

function isRedisLike(node: unknown): node is Redis {
  // Instances from another copy of ioredis fail `instanceof`; accept anything shaped like one.
  return (
    typeof node === 'object' &&
    node !== null &&
    typeof (node as Redis).evalsha === 'function' &&
    typeof (node as Redis).eval === 'function' &&
    typeof (node as Redis).status === 'string'
  );
}

function instanceId(client: Redis | Cluster, index: number): string {
  if ((client as Cluster).isCluster) return `cluster#${index}`;
  const opts = (client as Redis).options;
  return opts?.host ? `${opts.host}:${opts.port ?? 6379}` : `node#${index}`;
}
