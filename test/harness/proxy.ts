/**
 * A TCP fault proxy in front of one Redis node: tests point a client at the
 * proxy and then slow, hold, swallow, cut or refuse its traffic while the
 * server itself keeps running. Bytes are forwarded chunk by chunk, in order.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A running proxy; every fault applies to both directions of every connection. */
export interface FaultProxy {
  /** The port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** Adds `ms` of latency to every chunk from now on, each direction, keeping order. */
  setDelay(ms: number): void;
  /** Holds every byte (both directions) until flush(). */
  hold(): void;
  /** Ends hold(): delivers the held bytes now, late. */
  flush(): void;
  /**
   * While on, swallows bytes (and end-of-stream) silently; connections stay
   * open. Turning it off resets the connections that lost bytes: a TCP stream
   * never silently drops data, so they cannot go on in step.
   */
  blackhole(on: boolean): void;
  /** Ends every current connection gracefully (FIN on both sides); pending bytes are discarded. */
  drop(): void;
  /** Destroys every current connection with RST on both sides. */
  reset(): void;
  /** While on, new connections are accepted and reset at once. */
  refuse(on: boolean): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Starts a proxy on a free port of 127.0.0.1 forwarding to `target`. */
export async function startProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const faults: Faults = { delay: 0, held: false, blackholed: false, refusing: false };
  const connections = new Set<Connection>();

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    if (faults.refusing) {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    connections.add(new Connection(client, target, faults, connections));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('proxy has no port');
  const port = address.port;

  const each = (fn: (c: Connection) => void) => {
    for (const c of [...connections]) fn(c);
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    setDelay(ms) {
      if (!(ms >= 0)) throw new Error(`delay must be >= 0 ms, got ${ms}`);
      faults.delay = ms;
    },
    hold() {
      faults.held = true;
    },
    flush() {
      faults.held = false;
      each((c) => c.pump());
    },
    blackhole(on) {
      if (!on && faults.blackholed) each((c) => c.reset());
      faults.blackholed = on;
    },
    drop() {
      each((c) => c.drop());
    },
    reset() {
      each((c) => c.reset());
    },
    refuse(on) {
      faults.refusing = on;
    },
    close() {
      each((c) => c.destroy());
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Faults {
  delay: number;
  held: boolean;
  blackholed: boolean;
  refusing: boolean;
}

/** A chunk waiting to be delivered; `null` data is the end of the stream. */
interface Pending {
  readonly data: Buffer | null;
  readonly due: number;
}

/** One direction of one connection: a queue delivered in order, each chunk at its due time. */
class Direction {
  #queue: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    readonly to: Socket,
    readonly faults: Faults,
  ) {}

  push(data: Buffer | null): void {
    if (this.#closed || this.faults.blackholed) return;
    this.#queue.push({ data, due: performance.now() + this.faults.delay });
    this.pump();
  }

  pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.faults.held) return;
    for (;;) {
      const head = this.#queue[0];
      if (!head) return;
      const wait = head.due - performance.now();
      // A later chunk never overtakes an earlier one, even if the delay was lowered meanwhile.
      if (wait > 0) {
        this.#timer = setTimeout(() => this.pump(), Math.ceil(wait));
        return;
      }
      this.#queue.shift();
      if (this.to.destroyed || this.to.writableEnded) continue;
      if (head.data) this.to.write(head.data);
      else this.to.end();
    }
  }

  /** Discards what is pending and everything that arrives later. */
  clear(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
  }
}

class Connection {
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #toUpstream: Direction;
  readonly #toClient: Direction;
  readonly #registry: Set<Connection>;
  #done = false;

  constructor(
    client: Socket,
    target: { host: string; port: number },
    faults: Faults,
    registry: Set<Connection>,
  ) {
    this.#registry = registry;
    this.#client = client;
    // Half-open sockets let each side's FIN travel through the queue like any other byte.
    this.#upstream = createConnection({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
    });
    for (const s of [client, this.#upstream]) s.setNoDelay(true);
    this.#toUpstream = new Direction(this.#upstream, faults);
    this.#toClient = new Direction(client, faults);

    client.on('data', (d: Buffer) => this.#toUpstream.push(d));
    client.on('end', () => this.#toUpstream.push(null));
    this.#upstream.on('data', (d: Buffer) => this.#toClient.push(d));
    this.#upstream.on('end', () => this.#toClient.push(null));

    // A failure on one side (refused, reset) shows up on the other as a reset.
    client.on('error', () => this.reset());
    this.#upstream.on('error', () => this.reset());
    const closed = () => {
      if (client.destroyed && this.#upstream.destroyed) this.#forget();
    };
    client.on('close', closed);
    this.#upstream.on('close', closed);
  }

  pump(): void {
    this.#toUpstream.pump();
    this.#toClient.pump();
  }

  drop(): void {
    if (this.#done) return;
    this.#forget();
    this.#client.end();
    this.#upstream.end();
    // A frozen peer never answers the FIN; do not keep its socket forever.
    setTimeout(() => this.destroy(), 2_000).unref();
  }

  reset(): void {
    if (this.#done) return;
    this.#forget();
    for (const s of [this.#client, this.#upstream]) {
      if (s.destroyed) continue;
      try {
        s.resetAndDestroy();
      } catch {
        s.destroy();
      }
    }
  }

  destroy(): void {
    this.#forget();
    this.#client.destroy();
    this.#upstream.destroy();
  }

  #forget(): void {
    this.#done = true;
    this.#toUpstream.clear();
    this.#toClient.clear();
    this.#registry.delete(this);
  }
}
