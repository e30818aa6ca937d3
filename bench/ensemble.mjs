// Starts N throwaway redis-server masters on free 127.0.0.1 ports, each with its
// own temp --dir, and makes sure they die with this process: on normal exit,
// on SIGINT/SIGTERM and on a crash. Servers are only ever killed by their pid.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

const children = new Set();
const dirs = new Set();
let hooksInstalled = false;

/** Kills every server this module started (by pid) and removes their temp dirs; synchronous, safe to call twice. */
export function killAll() {
  for (const child of children) {
    try {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  children.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

const cleanups = [];

/** Adds a synchronous cleanup step (such as killing the proxy child) run before the servers die. */
export function addCleanup(fn) {
  cleanups.push(fn);
}

function cleanupAll() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch {
      // Best effort: the servers must still be killed.
    }
  }
  killAll();
}

/** Registers exit hooks once: the servers die on exit, on SIGINT/SIGTERM/SIGHUP and on a crash. */
export function installExitHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping redis-server processes\n`);
      cleanupAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`\nbench crashed: ${err?.stack ?? err}\n`);
    cleanupAll();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`\nbench crashed (unhandled rejection): ${err?.stack ?? err}\n`);
    cleanupAll();
    process.exit(1);
  });
}

/** Resolves with a port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Sends PING over a raw socket; resolves true on +PONG within `timeoutMs`. */
export function ping(host, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    const done = (ok) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    sock.on('error', () => done(false));
  });
}

async function startOne(log) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'quorumlock-bench-'));
    dirs.add(dir);
    // No persistence: the bench measures clients, and fsync noise on a shared disk would
    // swamp the differences between them. Every contender sees the same servers.
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
        '--maxmemory-policy',
        'noeviction',
        '--loglevel',
        'warning',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.add(child);
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d.toString();
    });
    const spawnError = new Promise((resolve) => child.once('error', resolve));
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) break;
      if (await ping('127.0.0.1', port, 300)) return { host: '127.0.0.1', port, pid: child.pid };
      const err = await Promise.race([spawnError, new Promise((r) => setTimeout(r, 50, null))]);
      if (err) throw new Error(`cannot start redis-server: ${err.message} (is it on PATH?)`);
    }
    log?.(`redis-server on port ${port} did not answer PING; retrying (${stderr.trim()})`);
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already exited.
    }
    children.delete(child);
  }
  throw new Error('could not start redis-server after 5 attempts');
}

/** Starts `n` independent redis-server masters; resolves with their { host, port, pid }. */
export async function startEnsemble(n, log) {
  installExitHooks();
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push(await startOne(log));
  return nodes;
}

/** Parses `redis://host:port`, `host:port` or `port` into { host, port }. */
export function parseNode(spec) {
  const s = spec.trim();
  if (/^\d+$/.test(s)) return { host: '127.0.0.1', port: Number(s) };
  const url = new URL(s.includes('://') ? s : `redis://${s}`);
  return {
    host: url.hostname || '127.0.0.1',
    port: Number(url.port || 6379),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
  };
}

/** `redis://` URL of a node, for clients that take URLs. */
export function nodeUrl(node) {
  const auth = node.password
    ? `${encodeURIComponent(node.username ?? '')}:${encodeURIComponent(node.password)}@`
    : '';
  return `redis://${auth}${node.host}:${node.port}`;
}

/** A node for messages: its URL with any password masked. */
export function nodeLabel(node) {
  const user = node.password ? `${node.username ?? ''}:***@` : '';
  return `redis://${user}${node.host}:${node.port}`;
}

/**
 * Connects to each node once (AUTH included) and sends PING, giving up on a
 * node after `timeoutMs`. Resolves with the nodes that did not answer, each
 * with the reason; empty when all are reachable. Without this, a default
 * ioredis client queues commands for an unreachable node and retries for a
 * long time, and the run appears to hang.
 */
export async function unreachableNodes(nodes, timeoutMs = 3000) {
  const check = async (node) => {
    const client = new Redis({
      host: node.host,
      port: node.port,
      ...(node.password ? { password: node.password } : {}),
      ...(node.username ? { username: node.username } : {}),
      lazyConnect: true,
      connectTimeout: timeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    // The socket's own error (ECONNREFUSED, WRONGPASS) says more than the
    // "Connection is closed" that connect() rejects with afterwards.
    let socketError = null;
    client.on('error', (err) => {
      socketError ??= err;
    });
    let timer;
    try {
      await Promise.race([
        client.connect().then(() => client.ping()),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
      return null;
    } catch (err) {
      return { node, reason: String((socketError ?? err)?.message ?? err) };
    } finally {
      clearTimeout(timer);
      client.disconnect();
    }
  };
  return (await Promise.all(nodes.map(check))).filter(Boolean);
}
