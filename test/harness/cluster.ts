/**
 * A Redis Cluster for integration tests: `masters` redis-server processes
 * with cluster mode on, each with its own port, bus port and data directory
 * on 127.0.0.1, joined by `redis-cli --cluster create` with no replicas.
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Cluster, type ClusterOptions, Redis } from 'ioredis';
import { freePort } from '../../src/cli/ensemble.js';
import { type Ensemble, startEnsemble } from './ensemble.js';

const run = promisify(execFile);

/** How long the cluster may take to agree that every slot is served. */
const READY_TIMEOUT_MS = 30_000;

/** A running Redis Cluster. */
export interface RedisCluster {
  /** One single-node ensemble per master (the harness's handle for stop and flush). */
  readonly masters: Ensemble[];
  /** The masters' ports. */
  readonly ports: number[];
  /** `redis://127.0.0.1:<port>` of each master. */
  readonly urls: string[];
  /** A fresh ioredis Cluster client seeded with every master (the caller quits it). */
  client(options?: ClusterOptions): Cluster;
  /** FLUSHALL on every master. */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a cluster of `masters` masters (at least 3) and waits until its state is ok. */
export async function startCluster(masters = 3): Promise<RedisCluster> {
  const started: Ensemble[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      // The default bus port (port + 10000) may be out of range or taken: pick one.
      const busPort = await freePort();
      started.push(
        await startEnsemble({
          size: 1,
          args: [
            ...['--cluster-enabled', 'yes'],
            ...['--cluster-config-file', 'nodes.conf'],
            ...['--cluster-port', String(busPort)],
            ...['--cluster-node-timeout', '5000'],
          ],
        }),
      );
    }
    const ports = started.map((e) => e.nodes[0]!.port);
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitUntilOk(ports);
    return {
      masters: started,
      ports,
      urls: ports.map((p) => `redis://127.0.0.1:${p}`),
      client: (options = {}) =>
        new Cluster(
          ports.map((port) => ({ host: '127.0.0.1', port })),
          options,
        ),
      flush: async () => {
        await Promise.all(started.map((e) => e.nodes[0]!.flush()));
      },
      stop: async () => {
        await Promise.all(started.map((e) => e.stop()));
      },
    };
  } catch (err) {
    await Promise.all(started.map((e) => e.stop()));
    throw err;
  }
}

/** Waits until every master reports cluster_state:ok and all 16384 slots served. */
async function waitUntilOk(ports: readonly number[]): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const clients = ports.map((port) => new Redis({ host: '127.0.0.1', port, lazyConnect: true }));
  try {
    for (;;) {
      const infos = await Promise.all(clients.map((c) => c.cluster('INFO')));
      const ok = infos.every(
        (info) =>
          /cluster_state:ok/.test(String(info)) &&
          /cluster_slots_ok:16384/.test(String(info)) &&
          new RegExp(`cluster_known_nodes:${ports.length}\\b`).test(String(info)),
      );
      if (ok) return;
      if (Date.now() > deadline) {
        throw new Error(`the cluster did not become ready:\n${infos.join('\n---\n')}`);
      }
      await sleep(100);
    }
  } finally {
    for (const c of clients) c.disconnect();
  }
}
