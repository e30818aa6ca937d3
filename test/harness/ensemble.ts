/**
 * Real Redis ensembles for integration tests: N independent redis-server
 * masters on 127.0.0.1, each on a free port with a fresh data directory, that
 * tests can stop, kill, restart (with or without their data), pause and resume.
 *
 * Nodes come from `redis-server` on PATH or from `redis:7` containers (see
 * redis.ts). QUORUMLOCK_TEST_NODES="redis://127.0.0.1:6381,..." points the
 * tests at servers that are already running instead; those cannot be stopped
 * or paused, and every test file shares them (run with --no-file-parallelism).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis, type RedisOptions } from 'ioredis';
import type { ContainerRuntimeClient, StartedTestContainer } from 'testcontainers';
import { type RedisSource, redisSource } from './redis.js';

/** One redis-server of an ensemble. */
export interface RedisProcess {
  /** Position in the ensemble, from 0. */
  readonly index: number;
  readonly host: '127.0.0.1';
  /** The port, which stays the same across restarts. */
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** The data directory on this machine; empty when the files live elsewhere (containers, external servers). */
  readonly dir: string;
  /** The server's pid while it runs as a local process; undefined otherwise. */
  pid: number | undefined;
  /**
   * Graceful shutdown (SIGTERM), resolved once the server has exited. Without
   * `appendonly`, the node SAVEs first (when not paused) so `restart({ keepData: true })` finds the keys.
   */
  stop(): Promise<void>;
  /**
   * Crash (SIGKILL), resolved once the server has exited. With `appendonly`
   * every acknowledged write survives; without it the node SAVEs just before
   * the kill, except when paused, where only the last snapshot survives.
   */
  kill(): Promise<void>;
  /**
   * Starts the server again on the same port, stopping it first if it runs.
   * `keepData: false` (the default) wipes the data directory first, like a
   * node that lost its disk.
   */
  restart(opts?: { keepData?: boolean }): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered. */
  pause(): void;
  /** Unfreezes a paused server (SIGCONT); does nothing if it is not paused. */
  resume(): void;
  /** A fresh ioredis client to this node with the given options (the caller quits it). */
  client(options?: RedisOptions): Redis;
  /** FLUSHALL on this node, resuming it first if it is paused. */
  flush(): Promise<void>;
}

/** A set of independent Redis masters. */
export interface Ensemble {
  readonly nodes: RedisProcess[];
  /** The nodes' URLs, in node order. */
  readonly urls: string[];
  /** Stops every node (resuming paused ones) and removes their data; safe to call twice. */
  stop(): Promise<void>;
  /**
   * All keys matching `pattern` (default `*`) with their values on every
   * running node, for "nothing written" assertions. Non-string values read as
   * null; stopped nodes hold nothing in memory and are skipped; a paused node throws.
   */
  keys(pattern?: string): Promise<Array<{ node: number; key: string; value: string | null }>>;
}

/** How to start an ensemble. */
export interface EnsembleOptions {
  /** Number of nodes. */
  size: number;
  /** Extra redis-server arguments, such as `['--maxmemory-policy', 'noeviction']`. */
  args?: string[];
  /** Run with `appendonly yes` and `appendfsync always`: every acknowledged write survives a kill. */
  appendonly?: boolean;
}

/** Starts `opts.size` fresh redis-server nodes (or adopts QUORUMLOCK_TEST_NODES) and waits until all answer PING. */
export async function startEnsemble(opts: EnsembleOptions): Promise<Ensemble> {
  if (!Number.isInteger(opts.size) || opts.size < 1) {
    throw new Error(`startEnsemble: size must be a positive integer, got ${opts.size}`);
  }
  const external = process.env.QUORUMLOCK_TEST_NODES?.trim();
  if (external) return adoptExternal(external, opts);

  const source = await redisSource();
  const settled = await Promise.allSettled(
    Array.from({ length: opts.size }, (_, index) => startNode(source, index, opts)),
  );
  const nodes = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(nodes.map((n) => n.dispose()));
    throw failed.reason;
  }
  return makeEnsemble(nodes);
}

/** What the ensemble needs beyond the public node interface. */
interface ManagedNode extends RedisProcess {
  readonly state: 'running' | 'paused' | 'stopped';
  /** Teardown: resume, SIGTERM, SIGKILL after 3 s, remove data. */
  dispose(): Promise<void>;
}

const HOST = '127.0.0.1' as const;
/** How long a node may take to answer PING after its start (loading an AOF on a busy machine). */
const READY_TIMEOUT_MS = 20_000;
/** How long a graceful shutdown may take before SIGKILL. */
const STOP_GRACE_MS = 3_000;
/** How long a restart keeps retrying when something else briefly holds the node's port. */
const PORT_RETRY_MS = 5_000;

function makeEnsemble(nodes: ManagedNode[]): Ensemble {
  let stopping: Promise<void> | undefined;
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    stop() {
      stopping ??= Promise.all(nodes.map((n) => n.dispose())).then(() => {});
      return stopping;
    },
    async keys(pattern = '*') {
      const perNode = await Promise.all(
        nodes.map(async (node) => {
          if (node.state === 'stopped') return [];
          if (node.state === 'paused') {
            throw new Error(`ensemble.keys: node ${node.index} is paused; resume it first`);
          }
          return withClient(node.port, async (redis) => {
            const keys: string[] = [];
            let cursor = '0';
            do {
              const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
              cursor = next;
              keys.push(...batch);
            } while (cursor !== '0');
            const unique = [...new Set(keys)].sort();
            const pipeline = redis.pipeline();
            for (const key of unique) pipeline.get(key);
            const replies = (await pipeline.exec()) ?? [];
            return unique.map((key, i) => {
              const [err, value] = replies[i] ?? [null, null];
              // WRONGTYPE for hashes, sets, ...: the key exists but has no string value.
              return {
                node: node.index,
                key,
                value: err ? null : ((value as string | null) ?? null),
              };
            });
          });
        }),
      );
      return perNode.flat();
    },
  };
}

// ---------------------------------------------------------------------------
// Local redis-server processes

/** Pids of every redis-server this process started that has not exited yet. */
const livePids = new Set<number>();
/** Data directories this process created and has not removed yet. */
const liveDirs = new Set<string>();
let exitHookInstalled = false;
let watchdog: ChildProcess | undefined;

/**
 * Kills the servers of a process that dies without running its 'exit' handlers
 * (vitest ends its workers with SIGTERM, then SIGKILL).
 */
const WATCHDOG = fileURLToPath(new URL('./watchdog.mjs', import.meta.url));

function tellWatchdog(line: string): void {
  if (!watchdog) {
    const { NODE_OPTIONS: _ignored, ...env } = process.env;
    const child = spawn(process.execPath, [WATCHDOG], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env,
    });
    child.on('error', () => {});
    child.stdin?.on('error', () => {});
    child.once('exit', () => {
      if (watchdog === child) watchdog = undefined;
    });
    // It must never keep a finished test process alive.
    child.unref();
    (child.stdin as Socket | null)?.unref();
    watchdog = child;
    // A replacement watchdog must learn the servers its predecessor was watching.
    for (const pid of livePids) child.stdin?.write(`+${pid}\n`);
    for (const dir of liveDirs) child.stdin?.write(`+dir ${dir}\n`);
  }
  watchdog.stdin?.write(`${line}\n`);
}

function track(pid: number): void {
  installExitHook();
  livePids.add(pid);
  tellWatchdog(`+${pid}`);
}

function untrack(pid: number): void {
  livePids.delete(pid);
  if (watchdog) tellWatchdog(`-${pid}`);
}

async function makeDataDir(index: number): Promise<string> {
  installExitHook();
  const dir = await mkdtemp(join(tmpdir(), `quorumlock-redis-${index}-`));
  liveDirs.add(dir);
  tellWatchdog(`+dir ${dir}`);
  return dir;
}

async function removeDataDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
  if (watchdog) tellWatchdog(`-dir ${dir}`);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed or forgetful test must not leave servers behind; 'exit' handlers must be synchronous.
  process.on('exit', () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

async function startNode(
  source: RedisSource,
  index: number,
  opts: EnsembleOptions,
): Promise<ManagedNode> {
  const extra = opts.args ?? [];
  const appendonly = opts.appendonly ?? false;
  if (source.kind === 'docker') return ContainerNode.start(source.image, index, extra, appendonly);
  const dir = await makeDataDir(index);
  try {
    // Another process may grab the port between our probe and the server's bind: try a new one.
    for (let attempt = 1; ; attempt++) {
      const node = new ProcessNode(source.path, index, await freePort(), dir, extra, appendonly);
      try {
        await node.launch();
        return node;
      } catch (err) {
        if (!(err instanceof PortInUseError) || attempt >= 5) throw err;
      }
    }
  } catch (err) {
    await removeDataDir(dir);
    throw err;
  }
}

/** The server could not bind its port. */
class PortInUseError extends Error {
  override name = 'PortInUseError';
}

function serverArgs(
  port: number,
  bind: string,
  dir: string,
  appendonly: boolean,
  extra: readonly string[],
): string[] {
  return [
    ...['--port', String(port), '--bind', bind, '--dir', dir, '--save', ''],
    ...(appendonly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    ...['--daemonize', 'no', '--protected-mode', 'no'],
    ...extra,
  ];
}

class ProcessNode implements ManagedNode {
  readonly host = HOST;
  pid: number | undefined;
  readonly #binary: string;
  readonly #extra: readonly string[];
  readonly #appendonly: boolean;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #paused = false;
  #output = '';
  #disposed = false;

  constructor(
    binary: string,
    readonly index: number,
    readonly port: number,
    readonly dir: string,
    extra: readonly string[],
    appendonly: boolean,
  ) {
    this.#binary = binary;
    this.#extra = extra;
    this.#appendonly = appendonly;
  }

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  get state(): 'running' | 'paused' | 'stopped' {
    if (!this.#child) return 'stopped';
    return this.#paused ? 'paused' : 'running';
  }

  /** Spawns the server and waits for PING; throws PortInUseError when the port is taken. */
  async launch(): Promise<void> {
    this.#output = '';
    const child = spawn(
      this.#binary,
      serverArgs(this.port, HOST, this.dir, this.#appendonly, this.#extra),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    this.pid = child.pid;
    if (child.pid !== undefined) track(child.pid);
    let exitReason: string | undefined;
    this.#exited = new Promise<void>((resolve) => {
      const done = (reason: string) => {
        exitReason ??= reason;
        if (child.pid !== undefined) untrack(child.pid);
        if (this.#child === child) {
          this.#child = undefined;
          this.pid = undefined;
          this.#paused = false;
        }
        resolve();
      };
      child.once('exit', (code, signal) => done(`exited with ${code ?? signal}`));
      child.once('error', (err) => done(`could not be started: ${err.message}`));
    });
    // 'exit' can come before the last output; 'close' comes after it.
    const outputDone = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const keep = (chunk: Buffer) => {
      // Only the tail matters: it says why a server refused to start.
      this.#output = (this.#output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    // A test that forgets stop() must not keep its worker alive; the exit hook kills the server.
    child.unref();
    (child.stdout as Socket | null)?.unref();
    (child.stderr as Socket | null)?.unref();

    try {
      await waitForPing(this.port, () => exitReason);
    } catch (err) {
      await this.#terminate();
      await Promise.race([outputDone, sleep(1_000)]);
      if (/address already in use/i.test(this.#output)) {
        throw new PortInUseError(`port ${this.port} is in use`);
      }
      throw new Error(
        `redis-server node ${this.index} on port ${this.port} did not start: ${(err as Error).message}\n${this.#output}`,
      );
    }
  }

  async stop(): Promise<void> {
    if (!this.#child) return;
    await this.#snapshot();
    await this.#terminate();
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    await this.#snapshot();
    child.kill('SIGKILL');
    await this.#exited;
  }

  async restart(opts: { keepData?: boolean } = {}): Promise<void> {
    if (this.#disposed) throw new Error(`node ${this.index} belongs to a stopped ensemble`);
    await this.stop();
    if (!opts.keepData) {
      await rm(this.dir, { recursive: true, force: true });
      await mkdir(this.dir, { recursive: true });
    }
    const deadline = performance.now() + PORT_RETRY_MS;
    for (;;) {
      try {
        await this.launch();
        return;
      } catch (err) {
        if (!(err instanceof PortInUseError) || performance.now() > deadline) throw err;
        await sleep(100);
      }
    }
  }

  pause(): void {
    const child = this.#child;
    if (!child) throw new Error(`node ${this.index} is not running`);
    child.kill('SIGSTOP');
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#child?.kill('SIGCONT');
    this.#paused = false;
  }

  client(options: RedisOptions = {}): Redis {
    return new Redis({ host: HOST, port: this.port, ...options });
  }

  async flush(): Promise<void> {
    this.resume();
    await withClient(this.port, (redis) => redis.flushall());
  }

  async dispose(): Promise<void> {
    this.#disposed = true;
    await this.#terminate();
    await removeDataDir(this.dir);
  }

  /** Without an AOF the only way to carry keys across a restart is a snapshot taken just before. */
  async #snapshot(): Promise<void> {
    if (this.#appendonly || this.#paused) return;
    await withClient(this.port, (redis) => redis.save()).catch(() => {
      // A node that cannot answer simply loses what it had, like a real crash.
    });
  }

  /** SIGTERM (resuming a paused server so it can act on it), SIGKILL after the grace period. */
  async #terminate(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill('SIGTERM');
    if (this.#paused) child.kill('SIGCONT');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.#exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// redis:7 containers (when no redis-server binary exists but a Docker engine runs)

type DockerContainer = ReturnType<ContainerRuntimeClient['container']['getById']>;

class ContainerNode implements ManagedNode {
  readonly host = HOST;
  /** The server runs inside a container: there is no pid on this machine to signal. */
  pid: number | undefined = undefined;
  readonly dir = '';
  readonly #image: string;
  readonly #extra: readonly string[];
  readonly #appendonly: boolean;
  #container: DockerContainer | undefined;
  #running = false;
  #paused = false;
  /** pause()/resume() are synchronous in the interface; the engine calls run in this chain. */
  #pending: Promise<void> = Promise.resolve();

  private constructor(
    image: string,
    readonly index: number,
    readonly port: number,
    extra: readonly string[],
    appendonly: boolean,
  ) {
    this.#image = image;
    this.#extra = extra;
    this.#appendonly = appendonly;
  }

  static async start(
    image: string,
    index: number,
    extra: readonly string[],
    appendonly: boolean,
  ): Promise<ContainerNode> {
    for (let attempt = 1; ; attempt++) {
      const node = new ContainerNode(image, index, await freePort(), extra, appendonly);
      try {
        await node.#create();
        return node;
      } catch (err) {
        if (
          attempt >= 5 ||
          !/address already in use|port is already allocated/i.test(String(err))
        ) {
          throw err;
        }
      }
    }
  }

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  get state(): 'running' | 'paused' | 'stopped' {
    if (!this.#running) return 'stopped';
    return this.#paused ? 'paused' : 'running';
  }

  async #create(): Promise<void> {
    const { GenericContainer, getContainerRuntimeClient } = await import('testcontainers');
    // Same arguments as a local server, except it must listen on the container's interface
    // and the port is published on the same number so restarts keep the URL.
    const started: StartedTestContainer = await new GenericContainer(this.#image)
      .withCommand([
        'redis-server',
        ...serverArgs(this.port, '0.0.0.0', '/data', this.#appendonly, this.#extra),
      ])
      .withExposedPorts({ container: this.port, host: this.port })
      .start();
    this.#container = (await getContainerRuntimeClient()).container.getById(started.getId());
    this.#running = true;
    this.#paused = false;
    await waitForPing(this.port, () => undefined);
  }

  #engine(): DockerContainer {
    if (!this.#container) throw new Error(`node ${this.index} has no container`);
    return this.#container;
  }

  async stop(): Promise<void> {
    await this.#pending;
    if (!this.#running) return;
    await this.#snapshot();
    if (this.#paused) await this.#engine().unpause();
    await this.#engine().stop({ t: STOP_GRACE_MS / 1000 });
    this.#running = false;
    this.#paused = false;
  }

  async kill(): Promise<void> {
    await this.#pending;
    if (!this.#running) return;
    await this.#snapshot();
    const container = this.#engine();
    try {
      await container.kill({ signal: 'SIGKILL' });
    } catch (err) {
      // Engines refuse to kill a paused container; unpausing first is the closest we can get.
      if (!this.#paused) throw err;
      await container.unpause();
      await container.kill({ signal: 'SIGKILL' });
    }
    await container.wait();
    this.#running = false;
    this.#paused = false;
  }

  async restart(opts: { keepData?: boolean } = {}): Promise<void> {
    await this.stop();
    if (opts.keepData) {
      // The stopped container keeps its /data volume and its port binding.
      await this.#engine().start();
      this.#running = true;
      await waitForPing(this.port, () => undefined);
      return;
    }
    await this.#engine().remove({ force: true, v: true });
    this.#container = undefined;
    await this.#create();
  }

  pause(): void {
    if (!this.#running) throw new Error(`node ${this.index} is not running`);
    if (this.#paused) return;
    this.#paused = true;
    const container = this.#engine();
    this.#pending = this.#pending.then(() => container.pause());
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const container = this.#engine();
    this.#pending = this.#pending.then(() => container.unpause());
  }

  client(options: RedisOptions = {}): Redis {
    return new Redis({ host: HOST, port: this.port, ...options });
  }

  async flush(): Promise<void> {
    this.resume();
    await this.#pending;
    await withClient(this.port, (redis) => redis.flushall());
  }

  async dispose(): Promise<void> {
    await this.#pending.catch(() => {});
    await this.#container?.remove({ force: true, v: true }).catch(() => {});
    this.#container = undefined;
    this.#running = false;
    this.#paused = false;
  }

  async #snapshot(): Promise<void> {
    if (this.#appendonly || this.#paused) return;
    await withClient(this.port, (redis) => redis.save()).catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Servers that already run (QUORUMLOCK_TEST_NODES)

async function adoptExternal(list: string, opts: EnsembleOptions): Promise<Ensemble> {
  const urls = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (urls.length < opts.size) {
    throw new Error(
      `QUORUMLOCK_TEST_NODES lists ${urls.length} servers but the test needs ${opts.size}`,
    );
  }
  const nodes = urls.slice(0, opts.size).map((url, index) => new ExternalNode(index, url));
  await Promise.all(
    nodes.map(async (node) => {
      if (!(await ping(node.port, 2_000))) {
        throw new Error(`QUORUMLOCK_TEST_NODES: ${node.url} does not answer PING`);
      }
      // Apply extra arguments that the running server can take at runtime, as `--name value` pairs.
      const args = opts.args ?? [];
      if (args.length === 0) return;
      await withClient(node.port, async (redis) => {
        for (let i = 0; i < args.length; i += 2) {
          const name = args[i]?.replace(/^--/, '');
          const value = args[i + 1];
          if (!name || value === undefined) {
            throw new Error(
              `cannot apply ${args.join(' ')} to ${node.url}: expected --name value pairs`,
            );
          }
          await redis.config('SET', name, value);
        }
      });
    }),
  );
  return makeEnsemble(nodes);
}

class ExternalNode implements ManagedNode {
  readonly host = HOST;
  readonly port: number;
  readonly dir = '';
  readonly state = 'running' as const;
  pid: number | undefined = undefined;

  constructor(
    readonly index: number,
    readonly url: string,
  ) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'redis:' || !['127.0.0.1', 'localhost'].includes(parsed.hostname)) {
      throw new Error(`QUORUMLOCK_TEST_NODES: ${url} must be redis://127.0.0.1:<port>`);
    }
    this.port = Number(parsed.port || 6379);
  }

  #unavailable(what: string): Error {
    return new Error(
      `${what}() is not available with QUORUMLOCK_TEST_NODES: the tests did not start ${this.url}`,
    );
  }

  stop(): Promise<void> {
    return Promise.reject(this.#unavailable('stop'));
  }

  kill(): Promise<void> {
    return Promise.reject(this.#unavailable('kill'));
  }

  restart(): Promise<void> {
    return Promise.reject(this.#unavailable('restart'));
  }

  pause(): void {
    throw this.#unavailable('pause');
  }

  resume(): void {
    // Never paused.
  }

  client(options: RedisOptions = {}): Redis {
    return new Redis({ host: HOST, port: this.port, ...options });
  }

  async flush(): Promise<void> {
    await withClient(this.port, (redis) => redis.flushall());
  }

  async dispose(): Promise<void> {
    // The servers belong to whoever started them.
  }
}

// ---------------------------------------------------------------------------
// Helpers

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** True when the server answers PING with PONG within `timeoutMs` (LOADING and errors count as no). */
function ping(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = createConnection({ host: HOST, port });
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

/** Polls PING until it answers; fails early when `exited()` reports why the server is gone. */
async function waitForPing(port: number, exited: () => string | undefined): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  for (;;) {
    const reason = exited();
    if (reason) throw new Error(reason);
    if (await ping(port, 250)) return;
    if (performance.now() > deadline) {
      throw new Error(`no PONG within ${READY_TIMEOUT_MS} ms`);
    }
    await sleep(20);
  }
}

/** Runs `fn` with a short-lived client that fails fast instead of reconnecting. */
async function withClient<T>(port: number, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    commandTimeout: 10_000,
  });
  redis.on('error', () => {
    // Reported through the command's rejection.
  });
  try {
    await redis.connect();
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}
