/** Types of zookeeper.mjs, for the TypeScript tests. */

/** Four-letter words whitelisted on every harness server. */
export const FOUR_LETTER_WORDS: string;

/** One ZooKeeper server of the harness. */
export interface ZkServer {
  /** Position in the ensemble, from 0. */
  readonly index: number;
  readonly host: '127.0.0.1';
  /** The client port, the same across restarts. */
  readonly port: number;
  /** `zk://127.0.0.1:<port>`. */
  readonly url: string;
  /** The server's temp dir (zoo.cfg, data/). */
  readonly dir: string;
  /** The pid while it runs. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Starts it again, keeping its data; resolves once spawned (standalone: once serving). */
  start(): Promise<void>;
  /** Resolves with the mode once it serves requests; rejects if it exits. */
  waitServing(): Promise<string>;
  /** `standalone`, `leader` or `follower` while serving, else undefined. */
  mode(): Promise<string | undefined>;
  /** Sends a four-letter word, resolves with the reply. */
  fourLetter(word: string, timeoutMs?: number): Promise<string>;
  /** SIGKILL; resolves once exited. */
  kill(): Promise<void>;
  /** SIGSTOP. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
}

/** A running server or ensemble. */
export interface ZooKeeper {
  readonly servers: ZkServer[];
  /** `127.0.0.1:p1,127.0.0.1:p2,...` */
  readonly hosts: string;
  /** `zk://<hosts><chroot>`. */
  url(chroot?: string): string;
  /** Kills every server and removes its dir; safe to call twice. */
  stop(): Promise<void>;
}

/** Starts a 1-node server (default) or an N-node ensemble; resolves once every server serves. */
export function startZooKeeper(opts?: { size?: number; tickTime?: number }): Promise<ZooKeeper>;

/** Waits until every running server serves requests. */
export function waitForQuorum(zk: ZooKeeper): Promise<void>;

/** Sends a four-letter word to 127.0.0.1:port. */
export function fourLetterWord(port: number, word: string, timeoutMs?: number): Promise<string>;

/** The server jar; throws with install advice when ZooKeeper is not installed. */
export function zookeeperJar(): string;
