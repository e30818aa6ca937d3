// The contenders, each behind one small interface so every scenario drives them
// the same way:
//
//   const c = await contender.create({ nodes, ttl, contended });
//   const h = await c.acquire(key, signal);   // waits per the client's retry settings, throws on failure
//   await c.release(h);
//   c.failedRounds();                          // cumulative lost/failed acquire rounds, or null
//   await c.close();
//
// `lockCommands` names the commands a contender sends per lock operation
// when they are not all scripts (a plain SET NX): the contended scenario counts
// them per node beside the script calls.
//
// Competitors get their documented defaults plus the same ttl; in the contended
// scenario they also get the retry settings that let them keep contending (see
// docs/benchmarks.md, "Settings").
import { randomBytes } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redlock as SesameRedlock } from '@sesamecare-oss/redlock';
import { Redis } from 'ioredis';
import { Mutex, RedlockMutex } from 'redis-semaphore';
import MikeRedlock from 'redlock';
import { nodeUrl } from './ensemble.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));

/** Installed version of a bench dependency (read from bench/node_modules, which `exports` maps may hide). */
export function versionOf(pkg) {
  const file = join(benchDir, 'node_modules', pkg, 'package.json');
  return JSON.parse(readFileSync(file, 'utf8')).version.replace(/^v/, '');
}

/** Opens one default-configured ioredis client per node and waits until all are ready. */
async function connectAll(nodes) {
  const clients = nodes.map(
    (n) =>
      new Redis({
        host: n.host,
        port: n.port,
        ...(n.password ? { password: n.password } : {}),
        ...(n.username ? { username: n.username } : {}),
      }),
  );
  // A bench must not crash on a node going away on purpose (degraded scenario).
  for (const c of clients) c.on('error', () => {});
  await Promise.all(
    clients.map(
      (c) =>
        new Promise((resolve, reject) => {
          if (c.status === 'ready') return resolve();
          const timer = setTimeout(() => reject(new Error('ioredis did not connect in 5 s')), 5000);
          c.once('ready', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  return clients;
}

function disconnectAll(clients) {
  for (const c of clients) c.disconnect();
}

/** Counts calls to `method` on one ioredis client (one call per round for fan-out clients). */
function countCalls(client, method) {
  const counter = { n: 0 };
  const original = client[method].bind(client);
  client[method] = (...args) => {
    counter.n++;
    return original(...args);
  };
  return counter;
}

// ---- quorumlock --------------------------------------------------------------

let quorumlockModule;

/** Loads quorumlock from ../dist (built by `npm run build`). */
export async function loadQuorumlock() {
  if (!quorumlockModule) {
    try {
      quorumlockModule = await import('../dist/index.js');
    } catch (err) {
      throw new Error(
        `cannot load quorumlock from dist/index.js (run \`npm run build\` in the repository root first): ${err.message}`,
      );
    }
  }
  return quorumlockModule;
}

/**
 * Counts quorumlock's failed acquire rounds on `resource` through its
 * `quorumlock:acquire` diagnostics channel. The channel is process-wide, so
 * this counts the rounds of every instance: the contended scenario reads it
 * once for all its clients.
 */
function quorumlockRoundCounter(resource) {
  const name = quorumlockModule.channels.acquire;
  let failed = 0;
  const onRound = (event) => {
    if (!event.ok && event.resources.includes(resource)) failed++;
  };
  diagnosticsChannel.subscribe(name, onRound);
  return {
    read: () => failed,
    close: () => diagnosticsChannel.unsubscribe(name, onRound),
  };
}

function quorumlock({ fencing }) {
  return {
    id: fencing ? 'quorumlock' : 'quorumlock-nofence',
    label: fencing ? 'quorumlock (fencing on)' : 'quorumlock (fencing off)',
    kind: 'quorumlock',
    pkg: null,
    settings: `new Redlock(urls, { ttl, fencing: ${fencing} }), library defaults otherwise (nodeTimeout learned from each node's round trips, at least 50 ms, at most ttl/4; retry 10–250 ms full jitter; waiters queue on the nodes and a release hands the turn to the first one); acquire(key, { ttl, signal })`,
    roundCounter: (resource) => quorumlockRoundCounter(resource),
    async create({ nodes, ttl }) {
      const { Redlock } = await loadQuorumlock();
      const redlock = new Redlock(nodes.map(nodeUrl), { ttl, fencing });
      return {
        acquire: (key, signal) => redlock.acquire(key, signal ? { ttl, signal } : { ttl }),
        release: (lock) => lock.release(),
        failedRounds: () => null,
        close: () => redlock.close(),
      };
    },
  };
}

// ---- redlock@5.0.0-beta.2 and @sesamecare-oss/redlock ------------------------

function redlockFamily({ id, label, pkg, Ctor }) {
  return {
    id,
    label,
    kind: 'library',
    pkg,
    settings:
      'default settings (retryCount 10, retryDelay 200, retryJitter 100, driftFactor 0.01); acquire([key], ttl); contended: acquire([key], ttl, { retryCount: 1000 })',
    async create({ nodes, ttl, contended }) {
      const clients = await connectAll(nodes);
      const redlock = new Ctor(clients);
      let failed = 0;
      // Contended: the default 10 retries × ~200 ms would give up after ~2 s and
      // the client would just call acquire again; a larger retryCount keeps the
      // same delays while letting a waiter stay in line. Release keeps defaults.
      const acquireSettings = contended ? { retryCount: 1000 } : undefined;
      return {
        acquire: async (key) => {
          try {
            const lock = await redlock.acquire([key], ttl, acquireSettings);
            failed += lock.attempts.length - 1;
            return lock;
          } catch (err) {
            if (Array.isArray(err?.attempts)) failed += err.attempts.length;
            throw err;
          }
        },
        release: (lock) => redlock.release(lock),
        failedRounds: () => failed,
        close: async () => disconnectAll(clients),
      };
    },
  };
}

// ---- redis-semaphore ---------------------------------------------------------

function semaphoreRedlock() {
  return {
    id: 'semaphore-redlock',
    label: 'redis-semaphore RedlockMutex',
    kind: 'library',
    pkg: 'redis-semaphore',
    // Acquires with a plain SET NX PX, releases with a script.
    lockCommands: ['set', 'evalsha', 'eval'],
    settings:
      'new RedlockMutex(clients, key, { lockTimeout: ttl }) per acquisition; defaults acquireTimeout 10000, retryInterval 10, refreshInterval 0.8·ttl',
    async create({ nodes, ttl }) {
      const clients = await connectAll(nodes);
      // Every round sends one SET NX to each node, so node 0's SET count is the round count.
      const sets = countCalls(clients[0], 'set');
      let acquired = 0;
      return {
        acquire: async (key, signal) => {
          const mutex = new RedlockMutex(clients, key, { lockTimeout: ttl });
          await mutex.acquire(signal);
          acquired++;
          return mutex;
        },
        release: (mutex) => mutex.release(),
        failedRounds: () => sets.n - acquired,
        close: async () => disconnectAll(clients),
      };
    },
  };
}

function semaphoreMutex() {
  return {
    id: 'semaphore-mutex-1node',
    label: 'redis-semaphore Mutex (1 node, reference)',
    kind: 'reference',
    pkg: 'redis-semaphore',
    lockCommands: ['set', 'evalsha', 'eval'],
    settings:
      'new Mutex(client0, key, { lockTimeout: ttl }) per acquisition, on the first node only; defaults as RedlockMutex',
    async create({ nodes, ttl }) {
      const clients = await connectAll(nodes.slice(0, 1));
      const sets = countCalls(clients[0], 'set');
      let acquired = 0;
      return {
        acquire: async (key, signal) => {
          const mutex = new Mutex(clients[0], key, { lockTimeout: ttl });
          await mutex.acquire(signal);
          acquired++;
          return mutex;
        },
        release: (mutex) => mutex.release(),
        failedRounds: () => sets.n - acquired,
        close: async () => disconnectAll(clients),
      };
    },
  };
}

// ---- raw ioredis floors -------------------------------------------------------

const RELEASE_LUA =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

/**
 * Resolves true once `quorum` of `calls` resolved truthy. With `waitAll`, only
 * after every call has answered; otherwise as soon as the outcome is certain.
 */
function vote(calls, quorum, waitAll) {
  if (waitAll) return Promise.all(calls).then((r) => r.filter(Boolean).length >= quorum);
  return new Promise((resolve) => {
    let yes = 0;
    let no = 0;
    for (const call of calls) {
      call.then((ok) => {
        if (ok) yes++;
        else no++;
        if (yes === quorum) resolve(true);
        else if (no === calls.length - quorum + 1) resolve(false);
      });
    }
  });
}

function floor({ waitAll }) {
  return {
    id: waitAll ? 'floor-all' : 'floor-majority',
    label: waitAll ? 'floor: SET NX, all replies' : 'floor: SET NX, majority',
    kind: 'floor',
    pkg: 'ioredis',
    lockCommands: ['set', 'evalsha', 'eval'],
    settings: `parallel SET key value NX PX ttl on every node + EVALSHA value-checked DEL; decides ${
      waitAll ? 'after all replies' : 'at the majority'
    }; no retries, no validity check`,
    contends: false,
    async create({ nodes, ttl }) {
      const clients = await connectAll(nodes);
      const shas = await Promise.all(clients.map((c) => c.script('LOAD', RELEASE_LUA)));
      const quorum = Math.floor(clients.length / 2) + 1;
      const del = (key, value) =>
        vote(
          clients.map((c, i) =>
            c.evalsha(shas[i], 1, key, value).then(
              () => true,
              () => false,
            ),
          ),
          quorum,
          waitAll,
        );
      return {
        acquire: async (key) => {
          const value = randomBytes(16).toString('hex');
          const ok = await vote(
            clients.map((c) =>
              c.set(key, value, 'PX', ttl, 'NX').then(
                (r) => r === 'OK',
                () => false,
              ),
            ),
            quorum,
            waitAll,
          );
          if (!ok) {
            await del(key, value);
            throw new Error(`${key} is taken`);
          }
          return { key, value };
        },
        release: (h) => del(h.key, h.value),
        failedRounds: () => null,
        close: async () => disconnectAll(clients),
      };
    },
  };
}

/** Every contender, in the default order (rotated per repetition). */
export function allContenders() {
  return [
    quorumlock({ fencing: true }),
    quorumlock({ fencing: false }),
    redlockFamily({
      id: 'redlock',
      label: 'redlock 5.0.0-beta.2',
      pkg: 'redlock',
      Ctor: MikeRedlock,
    }),
    redlockFamily({
      id: 'sesame-redlock',
      label: '@sesamecare-oss/redlock',
      pkg: '@sesamecare-oss/redlock',
      Ctor: SesameRedlock,
    }),
    semaphoreRedlock(),
    semaphoreMutex(),
    floor({ waitAll: true }),
    floor({ waitAll: false }),
  ].map((c) => ({ contends: true, version: c.pkg ? versionOf(c.pkg) : null, ...c }));
}
