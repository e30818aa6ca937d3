/**
 * A local ensemble of independent redis-server masters on free 127.0.0.1
 * ports, each in its own temporary directory, configured as the safety
 * assumptions ask (appendonly, appendfsync always, noeviction). Used by the
 * demo and by `quorumlock bench` when no nodes are given; it can pause,
 * resume, kill and restart a node to inject faults.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Options of startLocalEnsemble. */
export interface LocalEnsembleOptions {
  /** Number of masters. */
  readonly size: number;
  /** The redis-server executable; default `redis-server` from PATH. */
  readonly redisServer?: string;
  /** Extra `--name value` arguments given to every server. */
  readonly extraArgs?: readonly string[];
  /** How long a server may take to become ready, in ms (default 10 000). */
  readonly startTimeoutMs?: number;
}

/** One redis-server process of a local ensemble. */
export interface LocalServer {
  /** Position in the ensemble, from 0. */
  readonly index: number;
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** The data directory; kept across kill and restart so the AOF survives. */
  readonly dir: string;
  /** The current process id, or undefined while the server is down. */
  readonly pid: number | undefined;
  /** True while stopped with SIGSTOP. */
  readonly paused: boolean;
  /** SIGSTOP: the server keeps its connections but answers nothing. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGKILL, as a crash: no shutdown, no final fsync beyond appendfsync's. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and directory. */
  restart(): Promise<void>;
}

/** A running local ensemble. */
export interface LocalEnsemble {
  readonly servers: readonly LocalServer[];
  /** The node URLs, in order. */
  readonly urls: readonly string[];
  /** Stops every server and deletes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Arguments that make a server match the safety assumptions (docs/safety.md §2). */
export const SAFE_SERVER_ARGS: readonly string[] = [
  '--appendonly',
  'yes',
  '--appendfsync',
  'always',
  '--save',
  '',
  '--maxmemory-policy',
  'noeviction',
];

/** Resolves with a TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `size` redis-server masters and resolves once every one accepts
 * connections. Throws (after stopping what it started) when redis-server is
 * missing or a server does not come up.
 */
export async function startLocalEnsemble(options: LocalEnsembleOptions): Promise<LocalEnsemble> {
  const servers: ServerProcess[] = [];
  const stopAll = async () => {
    process.off('exit', killAllNow);
    await Promise.all(servers.map((s) => s.stop()));
  };
  // Servers must not outlive the process that started them, even when it exits abruptly.
  const killAllNow = () => {
    for (const s of servers) s.killNow();
  };
  process.on('exit', killAllNow);
  try {
    for (let i = 0; i < options.size; i++) {
      const server = new ServerProcess(i, options);
      servers.push(server);
      await server.start();
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    servers,
    urls: servers.map((s) => s.url),
    stop: () => {
      stopped ??= stopAll();
      return stopped;
    },
  };
}

class ServerProcess implements LocalServer {
  readonly index: number;
  readonly dir: string;
  port = 0;
  paused = false;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #options: LocalEnsembleOptions;

  constructor(index: number, options: LocalEnsembleOptions) {
    this.index = index;
    this.#options = options;
    this.dir = mkdtempSync(join(tmpdir(), `quorumlock-node${index}-`));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts on a fresh free port; retries a few times when another process takes the port first. */
  async start(): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      this.port = await freePort();
      try {
        await this.#spawn();
        return;
      } catch (err) {
        lastError = err;
        if (!(err instanceof PortTakenError)) break;
      }
    }
    throw lastError;
  }

  pause(): void {
    if (!this.#child || this.paused) return;
    this.#child.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.#child || !this.paused) return;
    this.#child.kill('SIGCONT');
    this.paused = false;
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill('SIGKILL');
    await this.#exited;
    this.paused = false;
  }

  async restart(): Promise<void> {
    if (this.#child) await this.kill();
    await this.#spawn();
  }

  killNow(): void {
    this.#child?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  #spawn(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--daemonize',
      'no',
      '--logfile',
      '',
      ...SAFE_SERVER_ARGS,
      ...(this.#options.extraArgs ?? []),
    ];
    const child = spawn(this.#options.redisServer ?? 'redis-server', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        if (this.#child === child) this.#child = undefined;
        resolve();
      });
    });
    const timeoutMs = this.#options.startTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      let output = '';
      const finish = (err?: Error) => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        child.off('exit', onExit);
        child.off('error', onError);
        // Keep draining the log so a chatty server never blocks on a full pipe.
        child.stdout?.resume();
        child.stderr?.resume();
        if (err) {
          child.kill('SIGKILL');
          reject(err);
        } else resolve();
      };
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) finish();
      };
      const onExit = () => {
        const taken = /Address already in use/i.test(output);
        const last = output.trim().split('\n').slice(-3).join('\n');
        finish(
          taken
            ? new PortTakenError(`port ${this.port} is taken`)
            : new Error(`redis-server on port ${this.port} exited during start:\n${last}`),
        );
      };
      const onError = (err: Error) =>
        finish(
          new Error(`could not start redis-server (${err.message}); is it installed and on PATH?`, {
            cause: err,
          }),
        );
      const timer = setTimeout(
        () => finish(new Error(`redis-server on port ${this.port} not ready in ${timeoutMs} ms`)),
        timeoutMs,
      );
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', onExit);
      child.once('error', onError);
    });
  }
}

class PortTakenError extends Error {
  override name = 'PortTakenError';
}
