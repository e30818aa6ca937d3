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
