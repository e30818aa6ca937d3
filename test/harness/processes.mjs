// What the database launchers share: free loopback ports, a temp dir per
// server, a child process that must never outlive the test process (an exit
// hook for ordinary exits, the shared harness watchdog for SIGKILL-ed
// workers), and waiting for the line a server prints once it is ready.
import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HOST = '127.0.0.1';

const live = new Set();
let watchdog;
let hooked = false;
const WATCHDOG = fileURLToPath(new URL('./watchdog.mjs', import.meta.url));

/** `n` distinct ports of 127.0.0.1 that were free a moment ago. */
export async function freePorts(n) {
  const held = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = net.createServer();
      held.push(server);
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, HOST, resolve);
      });
    }
    return held.map((server) => server.address().port);
  } finally {
    await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** A fresh temp dir, owned by `owner` ({ uid, gid }) when given, removed when this process exits. */
export function tempDir(prefix, owner) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  track(`+dir ${dir}`);
  return dir;
}

/** Removes a temp dir made by tempDir. */
export function removeDir(dir) {
  untrack(`+dir ${dir}`);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Spawns a server process that dies with this process, and resolves once a
 * line of its output matches `ready` (rejects with its last output if it
 * exits first or `timeoutMs` passes). Without `ready` it resolves at once and
 * the caller finds out when the server is ready.
 */
export async function spawnServer(command, args, { ready, timeoutMs = 60_000, name, ...options }) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  track(`+${child.pid}`);
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      untrack(`+${child.pid}`);
      resolve(code ?? signal);
    });
  });
  child.exited = exited;
  if (ready) await waitForLine(child, ready, timeoutMs, name, exited);
  // Keep draining its output so it never blocks on a full pipe.
  child.stdout.resume();
  child.stderr.resume();
  return child;
}

function waitForLine(child, ready, timeoutMs, name, exited) {
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} not ready after ${timeoutMs} ms: ${output.trim()}`));
    }, timeoutMs);
    const onData = (chunk) => {
      output = (output + chunk).slice(-4000);
      if (ready.test(output)) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        child.stderr.off('data', onData);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${how}) before it was ready: ${output.trim()}`));
    });
  });
}

/** Sends `signal` to a child and resolves once it has exited (at once if it already has). */
export async function stopChild(child, signal = 'SIGKILL') {
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, signal);
    } catch {
      // Already gone.
    }
  }
  await child.exited;
}

function tell(line) {
  if (!watchdog) {
    const { NODE_OPTIONS: _ignored, ...env } = process.env;
    const child = spawn(process.execPath, [WATCHDOG], { stdio: ['pipe', 'ignore', 'ignore'], env });
    child.on('error', () => {});
    child.stdin.on('error', () => {});
    child.once('exit', () => {
      if (watchdog === child) watchdog = undefined;
    });
    child.unref();
    child.stdin.unref();
    watchdog = child;
    for (const entry of live) child.stdin.write(`${entry}\n`);
  }
  watchdog.stdin.write(`${line}\n`);
}

function track(entry) {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const e of live) {
        if (e.startsWith('+dir ')) rmSync(e.slice(5), { recursive: true, force: true });
        else {
          try {
            process.kill(Number(e.slice(1)), 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
      }
    });
  }
  live.add(entry);
  tell(entry);
}

function untrack(entry) {
  if (!live.delete(entry)) return;
  if (watchdog) tell(`-${entry.slice(1)}`);
}
