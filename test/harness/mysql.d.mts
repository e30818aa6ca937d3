/** Types of mysql.mjs, for the TypeScript tests. */

/** A running MariaDB server of the harness. */
export interface MySqlServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `mysql://quorumlock@127.0.0.1:<port>/app` (all privileges, no password). */
  readonly url: string;
  /** The temp dir holding the datadir and the server's socket. */
  readonly dir: string;
  readonly pid: number;
  /** SIGSTOP. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** SIGKILL; resolves once exited. */
  kill(): Promise<void>;
  /** Kills the server and starts it again on the same port with the same data. */
  restart(): Promise<void>;
  /** Runs SQL as root over the server's socket; resolves with its trimmed output. */
  sql(text: string): Promise<string>;
  /** Shutdown and removal of the datadir; safe to call twice. */
  stop(): Promise<void>;
}

/** Starts a fresh MariaDB server on a free 127.0.0.1 port. */
export function startMySql(): Promise<MySqlServer>;
