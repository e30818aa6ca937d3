/**
 * The narrow adapter between the lock recipe and a ZooKeeper client library
 * (today the pure-JS `node-zookeeper-client`): promises with deadlines, a
 * session state the recipe can trust, and nothing else. The recipe never
 * touches the library; a second adapter (the native `zookeeper`) would
 * implement the same `ZkClient`.
 *
 * What this adapter adds to the library, because the lost-lock signal needs it:
 * - a read watchdog: no bytes from the server for 2/3 of the negotiated
 *   session timeout counts as a disconnect (the C and Java clients do this;
 *   this library has no read timeout and never notices a stalled server);
 * - a local expiry: suspended for a whole session timeout means the session is
 *   gone, whether or not the server could tell us (it cannot during a partition);
 * - a deadline on every request (the library queues requests while
 *   disconnected and would send them, late, after a reconnect).
 */
import diagnostics from 'node:diagnostics_channel';
import type { Clock } from '../clock.js';
import { MissingDriverError } from '../errors.js';

/**
 * Every request a session sends, as `{ session, op, path }` (session id in
 * hex), published only while someone subscribes: how many requests a lock
 * costs, and which waiters a release wakes.
 */
export const requestChannel = diagnostics.channel('quorumlock:zookeeper:request');

/** The package this adapter drives. */
export const DRIVER_PACKAGE = 'node-zookeeper-client';

/** What the recipe needs of a node's Stat. */
export interface ZkStat {
  /** The zxid of the transaction that created the node. */
  readonly czxid: bigint;
  /** The session that owns an ephemeral node; 0 for persistent nodes. */
  readonly ephemeralOwner: bigint;
  readonly numChildren: number;
}

/**
 * The session as the recipe sees it:
 * - `connecting`: no session yet;
 * - `connected`: the server answers; ephemeral nodes of this session are ours;
 * - `suspended`: disconnected (or silent past the watchdog): the session may
 *   still live, but nothing held can be trusted any more;
 * - `expired`: the session is gone (told by the server, or suspended for a
 *   whole session timeout); every ephemeral node of it is or will be deleted;
 * - `closed`: closed by us.
 */
export type ZkState = 'connecting' | 'connected' | 'suspended' | 'expired' | 'closed';

/** How a node is created. */
export type ZkCreateMode = 'persistent' | 'container' | 'ephemeral-sequential';

/** A failed request, with ZooKeeper's error name as `code` (`NO_NODE`, `CONNECTION_LOSS`, …). */
export class ZkError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'ZkError';
  }
}

/** One session to an ensemble. */
export interface ZkClient {
  readonly state: ZkState;
  /** The session id once connected; 0n before. */
  readonly sessionId: bigint;
  /** The session timeout the server granted, ms (the one asked for until connected). */
  readonly sessionTimeout: number;
  /** Monotonic time of the last bytes from the server, ms. */
  readonly lastHeard: number;
  /** Calls `listener` on every state change; returns the function that stops it. */
  onState(listener: (state: ZkState) => void): () => void;
  /** Creates a node; resolves with its path (with the sequence suffix when sequential). */
  create(path: string, data: Buffer, mode: ZkCreateMode): Promise<string>;
  /**
   * Creates an ephemeral sequential node of this session; resolves with its
   * path and the zxid of the transaction that created it (its czxid).
   */
  createEphemeralSequential(path: string, data: Buffer): Promise<{ path: string; zxid: bigint }>;
  /** Deletes a node at any version; false when it did not exist. */
  remove(path: string): Promise<boolean>;
  /** The node's Stat, or null when it does not exist. */
  stat(path: string): Promise<ZkStat | null>;
  /**
   * The node's data and Stat, or null when it does not exist. With `watch`,
   * it is called once, when the node is deleted or its data changes (a watch
   * survives reconnects within the session).
   */
  getData(
    path: string,
    watch?: (event: 'deleted' | 'changed') => void,
  ): Promise<{ data: Buffer; stat: ZkStat } | null>;
  /** The names of the node's children, or null when it does not exist. */
  children(path: string): Promise<string[] | null>;
  /** Whether the server makes container nodes (3.5+); false once a server refused one. */
  readonly containers: boolean;
  /** Closes the session (the server deletes its ephemeral nodes at once). */
  close(): Promise<void>;
}

/** How to open a client. */
export interface ZkClientOptions {
  /** `host:port,host:port`, without a chroot. */
  readonly hosts: string;
  /** The session timeout to ask for, ms; the server clamps it to its bounds. */
  readonly sessionTimeout: number;
  readonly clock: Clock;
}

// The parts of node-zookeeper-client this adapter uses (it ships no types).
interface DriverStat {
  czxid: Buffer;
  ephemeralOwner: Buffer;
  numChildren: number;
}
interface DriverException extends Error {
  getCode(): number;
  getName(): string;
}
type Callback<T> = (error: DriverException | null, result: T, extra?: unknown) => void;
interface DriverClient {
  connectionManager: DriverConnection;
  connect(): void;
  close(): void;
  on(event: 'state', listener: (state: { name: string; code: number }) => void): void;
  getSessionId(): Buffer;
  getSessionTimeout(): number;
  create(path: string, data: Buffer, mode: number, cb: Callback<string>): void;
  remove(path: string, version: number, cb: Callback<void>): void;
  exists(path: string, cb: Callback<DriverStat | null>): void;
  getData(
    path: string,
    watcher: ((event: { type: number }) => void) | undefined,
    cb: Callback<Buffer>,
  ): void;
  getChildren(path: string, cb: Callback<string[]>): void;
}
interface DriverConnection {
  socket?: { destroy(): void };
  onSocketData(buffer: Buffer): void;
  queue(request: object, cb: Callback<CreateReply>): void;
}
interface CreateReply {
  header: { zxid: Buffer };
  payload: { path: string };
}
interface Driver {
  createClient(hosts: string, options: object): DriverClient;
  CreateMode: Record<'PERSISTENT' | 'EPHEMERAL_SEQUENTIAL', number>;
  ACL: { OPEN_ACL_UNSAFE: Array<{ toRecord(): object }> };
}
interface Jute {
  OP_CODES: Record<string, number>;
  protocol: Record<string, new () => Record<string, unknown>>;
  Request: new (header: object, payload: object) => { toBuffer(): Buffer };
}

/** The createContainer opcode and flag of ZooKeeper 3.5+, unknown to the 3.4-era library. */
const OP_CREATE_CONTAINER = 19;
const FLAG_CONTAINER = 4;
/** The watch event type of a deleted node. */
const NODE_DELETED = 2;

let loaded: Promise<{ driver: Driver; jute: Jute }> | undefined;

/** Loads the driver once; rejects with MissingDriverError naming the package when it is absent. @internal */
export function loadDriver(): Promise<{ driver: Driver; jute: Jute }> {
  loaded ??= (async () => {
    try {
      const driver = (await import(DRIVER_PACKAGE)) as unknown as { default?: Driver } & Driver;
      const jute = (await import(`${DRIVER_PACKAGE}/lib/jute/index.js`)) as unknown as {
        default?: Jute;
      } & Jute;
      return { driver: driver.default ?? driver, jute: jute.default ?? jute };
    } catch (err) {
      loaded = undefined;
      throw new MissingDriverError(DRIVER_PACKAGE, 'ZooKeeper', err);
    }
  })();
  return loaded;
}

/** Opens a session to `options.hosts` (it connects in the background; watch `state`). */
export async function openZkClient(options: ZkClientOptions): Promise<ZkClient> {
  const { driver, jute } = await loadDriver();
  return new DriverZkClient(driver, jute, options);
}

class DriverZkClient implements ZkClient {
  state: ZkState = 'connecting';
  lastHeard: number;
  readonly #client: DriverClient;
  readonly #driver: Driver;
  readonly #jute: Jute;
  readonly #clock: Clock;
  readonly #asked: number;
  readonly #listeners = new Set<(state: ZkState) => void>();
  #sessionId = 0n;
  #cancelWatchdog: () => void = () => {};
  #containers = true;

  constructor(driver: Driver, jute: Jute, options: ZkClientOptions) {
    this.#driver = driver;
    this.#jute = jute;
    this.#clock = options.clock;
    this.#asked = options.sessionTimeout;
    this.lastHeard = this.#clock.now();
    this.#client = driver.createClient(options.hosts, {
      sessionTimeout: options.sessionTimeout,
      // Cycle through the servers quickly; our own deadlines bound every wait.
      spinDelay: 100,
      retries: 0,
    });
    const cm = this.#client.connectionManager;
    const onSocketData = cm.onSocketData;
    // Every byte from the server feeds the watchdog (the library binds this
    // method to each new socket, so patching the instance covers reconnects).
    cm.onSocketData = (buffer: Buffer) => {
      this.lastHeard = this.#clock.now();
      onSocketData.call(cm, buffer);
    };
    this.#client.on('state', (s) => this.#onDriverState(s.name));
    this.#client.connect();
    this.#armWatchdog();
  }

  get sessionId(): bigint {
    return this.#sessionId;
  }

  get sessionTimeout(): number {
    return this.state === 'connecting' ? this.#asked : this.#client.getSessionTimeout();
  }

  onState(listener: (state: ZkState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async create(path: string, data: Buffer, mode: ZkCreateMode): Promise<string> {
    if (mode === 'container') {
      if (this.#containers) {
        try {
          return await this.#createContainer(path, data);
        } catch (err) {
          if (!(err instanceof ZkError) || err.code !== 'UNIMPLEMENTED') throw err;
          // A 3.4 server: plain persistent nodes, which the recipe removes itself.
          this.#containers = false;
        }
      }
      mode = 'persistent';
    }
    const flags =
      mode === 'persistent'
        ? this.#driver.CreateMode.PERSISTENT
        : this.#driver.CreateMode.EPHEMERAL_SEQUENTIAL;
    return this.#call<string>('create', path, (cb) => this.#client.create(path, data, flags, cb));
  }

  createEphemeralSequential(path: string, data: Buffer): Promise<{ path: string; zxid: bigint }> {
    const flags = this.#driver.CreateMode.EPHEMERAL_SEQUENTIAL;
    return this.#queueCreate('create', path, data, flags).then((reply) => ({
      path: reply.payload.path,
      zxid: reply.header.zxid.readBigInt64BE(),
    }));
  }

  /** Whether the server creates container nodes (3.5+); known after the first container create. */
  get containers(): boolean {
    return this.#containers;
  }

  async remove(path: string): Promise<boolean> {
    try {
      await this.#call<void>('delete', path, (cb) => this.#client.remove(path, -1, cb));
      return true;
    } catch (err) {
      if (err instanceof ZkError && err.code === 'NO_NODE') return false;
      throw err;
    }
  }

  async stat(path: string): Promise<ZkStat | null> {
    const stat = await this.#call<DriverStat | null>('exists', path, (cb) =>
      this.#client.exists(path, cb),
    );
    return stat ? toStat(stat) : null;
  }

  async getData(
    path: string,
    watch?: (event: 'deleted' | 'changed') => void,
  ): Promise<{ data: Buffer; stat: ZkStat } | null> {
    let stat: DriverStat | undefined;
    const watcher =
      watch && ((e: { type: number }) => watch(e.type === NODE_DELETED ? 'deleted' : 'changed'));
    try {
      const data = await this.#call<Buffer>('getData', path, (cb) =>
        this.#client.getData(path, watcher, (err, result, s) => {
          stat = s as DriverStat;
          cb(err, result);
        }),
      );
      return { data: data ?? Buffer.alloc(0), stat: toStat(stat!) };
    } catch (err) {
      if (err instanceof ZkError && err.code === 'NO_NODE') return null;
      throw err;
    }
  }

  async children(path: string): Promise<string[] | null> {
    try {
      return await this.#call<string[]>('getChildren', path, (cb) =>
        this.#client.getChildren(path, cb),
      );
    } catch (err) {
      if (err instanceof ZkError && err.code === 'NO_NODE') return null;
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasLive = this.state === 'connected';
    this.#setState('closed');
    this.#cancelWatchdog();
    if (!wasLive) {
      this.#client.connectionManager.socket?.destroy();
      this.#client.close();
      return;
    }
    // Wait (briefly) for the server to close the session, which deletes our ephemeral nodes now.
    await new Promise<void>((resolve) => {
      const cancel = this.#clock.setTimer(resolve, Math.min(1000, this.sessionTimeout / 3));
      this.#client.on('state', (s) => {
        if (s.name === 'DISCONNECTED' || s.name === 'EXPIRED') {
          cancel();
          resolve();
        }
      });
      this.#client.close();
    });
    this.#client.connectionManager.socket?.destroy();
  }

  /** Runs one library call with a deadline; its error becomes a ZkError. */
  #call<T>(op: string, path: string, start: (cb: Callback<T>) => void): Promise<T> {
    if (this.state !== 'connected') {
      return Promise.reject(
        new ZkError(
          this.state === 'expired' ? 'SESSION_EXPIRED' : 'CONNECTION_LOSS',
          `${op} ${path}: the ZooKeeper session is ${this.state}`,
        ),
      );
    }
    if (requestChannel.hasSubscribers) {
      requestChannel.publish({ session: this.#sessionId.toString(16), op, path });
    }
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const cancel = this.#clock.setTimer(
        () => {
          if (done) return;
          done = true;
          reject(new ZkError('OPERATION_TIMEOUT', `${op} ${path}: no reply in time`));
        },
        (this.sessionTimeout * 2) / 3,
        { keepAlive: false },
      );
      start((err, result) => {
        if (done) return;
        done = true;
        cancel();
        if (err) {
          const code = typeof err.getName === 'function' ? err.getName() : 'SYSTEM_ERROR';
          reject(new ZkError(code, `${op} ${path}: ${code}`, { cause: err }));
        } else resolve(result);
      });
    });
  }

  /** createContainer (opcode 19) through the library's queue; the reply is read as a create's. */
  #createContainer(path: string, data: Buffer): Promise<string> {
    return this.#queueCreate(
      'createContainer',
      path,
      data,
      FLAG_CONTAINER,
      OP_CREATE_CONTAINER,
    ).then((reply) => reply.payload.path);
  }

  /**
   * A create sent through the library's queue, for what its `create` hides:
   * the reply header, whose zxid is the create's own transaction (the server
   * builds the reply right after applying it), and opcodes it does not know.
   */
  #queueCreate(
    op: string,
    path: string,
    data: Buffer,
    flags: number,
    opcode?: number,
  ): Promise<CreateReply> {
    const jute = this.#jute;
    const header = new jute.protocol.RequestHeader!();
    const payload = new jute.protocol.CreateRequest!();
    payload.path = path;
    payload.data = data;
    payload.acl = this.#driver.ACL.OPEN_ACL_UNSAFE.map((acl) => acl.toRecord());
    payload.flags = flags;
    const request = new jute.Request(header, payload);
    header.type = jute.OP_CODES.CREATE;
    if (opcode !== undefined) {
      // The library parses a reply by the request's type and knows no other
      // create opcode: send `opcode`, then read the reply as a create's (its path comes first).
      const toBuffer = request.toBuffer.bind(request);
      request.toBuffer = () => {
        header.type = opcode;
        try {
          return toBuffer();
        } finally {
          header.type = jute.OP_CODES.CREATE;
        }
      };
    }
    return this.#call<CreateReply>(op, path, (cb) =>
      this.#client.connectionManager.queue(request, cb),
    );
  }

  #onDriverState(name: string): void {
    if (this.state === 'closed' || this.state === 'expired') return;
    if (name === 'SYNC_CONNECTED') {
      const id = this.#client.getSessionId().readBigUInt64BE();
      if (this.#sessionId !== 0n && id !== this.#sessionId) {
        // A new session after an expiry we missed: the old one is gone.
        this.#expire();
        return;
      }
      this.#sessionId = id;
      this.lastHeard = this.#clock.now();
      this.#setState('connected');
    } else if (name === 'DISCONNECTED') {
      if (this.state === 'connected') this.#setState('suspended');
    } else if (name === 'EXPIRED' || name === 'AUTH_FAILED') {
      this.#expire();
    }
  }

  #expire(): void {
    this.#setState('expired');
    this.#cancelWatchdog();
    this.#client.close();
    this.#client.connectionManager.socket?.destroy();
  }

  #setState(state: ZkState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of [...this.#listeners]) listener(state);
  }

  /**
   * Checks the server's silence a few times per session timeout: after 2/3 of
   * it, suspend and drop the connection (the library then tries the next
   * server); after all of it, the session is expired on the server too.
   */
  #armWatchdog(): void {
    const tick = () => {
      const timeout = this.sessionTimeout;
      const silent = this.#clock.now() - this.lastHeard;
      if (this.state === 'connected' && silent >= (timeout * 2) / 3) {
        this.#setState('suspended');
        this.#client.connectionManager.socket?.destroy();
      }
      if (this.state === 'suspended' && silent >= timeout) {
        this.#expire();
        return;
      }
      if (this.state === 'closed' || this.state === 'expired') return;
      this.#cancelWatchdog = this.#clock.setTimer(tick, Math.max(20, timeout / 12), {
        keepAlive: false,
      });
    };
    tick();
  }
}

function toStat(stat: DriverStat): ZkStat {
  return {
    czxid: stat.czxid.readBigInt64BE(),
    ephemeralOwner: stat.ephemeralOwner.readBigUInt64BE(),
    numChildren: stat.numChildren,
  };
}
