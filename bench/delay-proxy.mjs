// A small TCP delay proxy for the degraded and multi-region scenarios. The
// proxies run in a child process of their own so that forwarding never waits
// on (or bills CPU to) the clients being measured. Each proxy delays each
// direction of every connection by its own one-way delay, preserving byte
// order, and can be taken "down" (connections reset, port refusing) and back.
//
// Parent side: `const proxies = await DelayProxies.start(); const port = await proxies.add(node, 10);`
import { fork } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { addCleanup } from './ensemble.mjs';

const thisFile = fileURLToPath(import.meta.url);

/** Controls the proxy child process; every method resolves once the child has applied the change. */
export class DelayProxies {
  #child;
  #seq = 0;
  #pending = new Map();

  constructor(child) {
    this.#child = child;
    child.on('message', (msg) => {
      const p = this.#pending.get(msg.seq);
      if (!p) return;
      this.#pending.delete(msg.seq);
      if (msg.error) p.reject(new Error(msg.error));
      else p.resolve(msg.result);
    });
    child.on('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`delay proxy exited (${code})`));
      this.#pending.clear();
    });
  }

  /** Forks the proxy process; it is killed by pid when the bench exits. */
  static async start() {
    const child = fork(thisFile, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    addCleanup(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    });
    const proxies = new DelayProxies(child);
    await proxies.#call({ op: 'hello' });
    return proxies;
  }

  #call(msg) {
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject });
      this.#child.send({ ...msg, seq });
    });
  }

  /** Opens a proxy to `target` ({ host, port }) with `oneWayMs` per direction; resolves with { id, host, port }. */
  add(target, oneWayMs = 0) {
    return this.#call({ op: 'add', target, delay: oneWayMs });
  }

  /** Changes a proxy's one-way delay (ms); affects bytes arriving from now on. */
  setDelay(id, oneWayMs) {
    return this.#call({ op: 'set', id, delay: oneWayMs });
  }

  /** Resets every connection through the proxy and refuses new ones, like a dead host. */
  down(id) {
    return this.#call({ op: 'down', id });
  }

  /** Listens again on the same port after `down`. */
  up(id) {
    return this.#call({ op: 'up', id });
  }

  /** Closes every proxy. */
  closeAll() {
    return this.#call({ op: 'closeAll' });
  }

  /** Ends the child process (by pid). */
  stop() {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGTERM');
    }
  }
}

// ---- child side -------------------------------------------------------------

/** Forwards src → dst, delaying each chunk by proxy.delay ms, in arrival order. */
function delayedPipe(src, dst, proxy) {
  const queue = [];
  let timer = null;
  const flush = () => {
    timer = null;
    // Chunks due within the timer's granularity go now, so a stream of small
    // chunks is not serialised into one timer tick each.
    const now = performance.now() + 0.25;
    while (queue.length > 0 && queue[0].due <= now) {
      if (!dst.destroyed) dst.write(queue.shift().chunk);
      else queue.shift();
    }
    if (queue.length > 0) schedule();
  };
  const schedule = () => {
    timer = setTimeout(flush, Math.max(0, queue[0].due - performance.now()));
  };
  src.on('data', (chunk) => {
    if (proxy.delay <= 0 && queue.length === 0) {
      if (!dst.destroyed) dst.write(chunk);
      return;
    }
    queue.push({ due: performance.now() + proxy.delay, chunk });
    if (timer === null) schedule();
  });
  src.on('close', () => {
    if (timer) clearTimeout(timer);
    queue.length = 0;
  });
}

function runChild() {
  const proxies = new Map();
  let nextId = 1;

  const listen = (proxy) =>
    new Promise((resolve, reject) => {
      const server = net.createServer((client) => {
        client.setNoDelay(true);
        const upstream = net.connect(proxy.target);
        upstream.setNoDelay(true);
        proxy.sockets.add(client);
        proxy.sockets.add(upstream);
        const end = () => {
          client.destroy();
          upstream.destroy();
          proxy.sockets.delete(client);
          proxy.sockets.delete(upstream);
        };
        client.on('error', end);
        upstream.on('error', end);
        client.on('close', end);
        upstream.on('close', end);
        delayedPipe(client, upstream, proxy);
        delayedPipe(upstream, client, proxy);
      });
      server.once('error', reject);
      server.listen(proxy.port, '127.0.0.1', () => {
        proxy.server = server;
        proxy.port = server.address().port;
        resolve();
      });
    });

  const ops = {
    hello: async () => 'ok',
    add: async ({ target, delay }) => {
      const proxy = { id: nextId++, target, delay, port: 0, server: null, sockets: new Set() };
      await listen(proxy);
      proxies.set(proxy.id, proxy);
      return { id: proxy.id, host: '127.0.0.1', port: proxy.port };
    },
    set: async ({ id, delay }) => {
      proxies.get(id).delay = delay;
      return true;
    },
    down: async ({ id }) => {
      const proxy = proxies.get(id);
      if (!proxy.server) return true;
      const server = proxy.server;
      proxy.server = null;
      for (const s of proxy.sockets) s.destroy();
      proxy.sockets.clear();
      await new Promise((resolve) => server.close(resolve));
      return true;
    },
    up: async ({ id }) => {
      const proxy = proxies.get(id);
      if (!proxy.server) await listen(proxy);
      return true;
    },
    closeAll: async () => {
      for (const id of proxies.keys()) await ops.down({ id });
      proxies.clear();
      return true;
    },
  };

  process.on('message', async (msg) => {
    try {
      const result = await ops[msg.op](msg);
      process.send({ seq: msg.seq, result });
    } catch (err) {
      process.send({ seq: msg.seq, error: String(err?.message ?? err) });
    }
  });
  // The parent is gone: nothing left to proxy for.
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[1] === thisFile && process.argv.includes('--child')) runChild();
