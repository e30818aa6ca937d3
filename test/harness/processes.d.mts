/** Types of processes.mjs. */
import type { ChildProcess, SpawnOptions } from 'node:child_process';

export const HOST: '127.0.0.1';
/** `n` distinct ports of 127.0.0.1 that were free a moment ago. */
export function freePorts(n: number): Promise<number[]>;
/** A fresh temp dir, removed when this process exits. */
export function tempDir(prefix: string, owner?: { uid: number; gid: number }): string;
/** Removes a temp dir made by tempDir. */
export function removeDir(dir: string): void;
/** Spawns a server that dies with this process; resolves once its output matches `ready`. */
export function spawnServer(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { ready: RegExp; timeoutMs?: number; name: string },
): Promise<ChildProcess & { exited: Promise<number | string | null> }>;
/** Signals a child and resolves once it has exited. */
export function stopChild(
  child: ChildProcess & { exited: Promise<unknown> },
  signal?: NodeJS.Signals,
): Promise<void>;

/** A running database server of the harness (PostgreSQL or MariaDB). */
export interface DatabaseServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** A URL with all privileges and no password. */
  readonly url: string;
  /** The temp dir holding the data and the server's socket. */
  readonly dir: string;
  /** The server's pid (PostgreSQL: the postmaster; pause and kill reach its backends too). */
  readonly pid: number;
  /** SIGSTOP (PostgreSQL: to every backend too): connections stay open, nothing is answered. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** SIGKILL; resolves once exited. */
  kill(): Promise<void>;
  /** Kills the server and starts it again on the same port with the same data. */
  restart(): Promise<void>;
  /** Runs SQL as the superuser; resolves with its trimmed output. */
  sql(text: string): Promise<string>;
  /** Shutdown and removal of the data; safe to call twice. */
  stop(): Promise<void>;
}
