/**
 * The simulation's checker, on real servers. Three redis-server masters sit
 * behind TCP fault proxies; client processes and in-process clients contend
 * for one resource while a schedule of faults runs: added latency, bytes
 * held and delivered late, blackholes, dropped and reset connections,
 * refused connections, SIGSTOP/SIGCONT, SIGKILL with a restart that keeps
 * the data (appendfsync always) and one that loses it after more than the
 * ttl. Every client records its history on the machine's clock (acquire-ok
 * time, believed validity deadline, release time, token) and writes through
 * the fencing guard to a store on a fourth, untouched server. The checker
 * of test/sim/checker.ts then judges I1 (no overlap), I2 (tokens grow) and
 * I3 (the store never accepted a stale token) on the merged history.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fencedCall, Redlock } from '../../src/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';
import { type FaultProxy, startProxy } from '../harness/proxy.js';
import {
  type Acquisition,
  checkFencedStore,
  checkFenceOrder,
  checkMutualExclusion,
  emptyHistory,
  type History,
} from '../sim/checker.js';

const TTL = 500;
const WORKLOAD_MS = 18_000;
const RESOURCE = 'faults:r';
const STORE_KEY = '{faults:store}:log';
const DIST = new URL('../../dist/index.js', import.meta.url);

/** What a client reports, with times in epoch ms on the machine's clock (shared by every process). */
type ClientEvent =
  | { type: 'start'; id: string; at: number }
  | { type: 'ok'; id: string; at: number; until: number; fences: Record<string, number> }
  | { type: 'deadline'; id: string; at: number; until: number }
  | { type: 'release'; id: string; at: number }
  | { type: 'fail'; id: string; at: number; code: string };

interface ClientConfig {
  name: string;
  urls: string[];
  storeUrl: string;
  storeKey: string;
  resource: string;
  ttl: number;
  wait: number;
  holdMs: number;
  durationMs: number;
  seed: number;
  options: Record<string, unknown>;
}

interface ClientLib {
  Redlock: typeof Redlock;
  fencedCall: typeof fencedCall;
  Redis: typeof Redis;
}

/**
 * One client's workload: acquire, write through the guard while the lock is
 * believed valid (sometimes extending it), release, repeat. It uses only its
 * arguments and globals, because child processes run it from its source text.
 */
async function clientLoop(
  lib: ClientLib,
  cfg: ClientConfig,
  emit: (e: ClientEvent) => void,
): Promise<void> {
  const now = () => performance.timeOrigin + performance.now();
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  let state = cfg.seed;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const redlock = new lib.Redlock(cfg.urls, cfg.options);
  const store = new lib.Redis(cfg.storeUrl);
  store.on('error', () => {});
  const end = now() + cfg.durationMs;
  let k = 0;
  try {
    while (now() < end) {
      const id = `${cfg.name}#${k++}`;
      emit({ type: 'start', id, at: now() });
      let lock: Awaited<ReturnType<Redlock['acquire']>>;
      try {
        lock = await redlock.acquire(cfg.resource, { ttl: cfg.ttl, wait: cfg.wait });
      } catch (err) {
        emit({ type: 'fail', id, at: now(), code: String((err as { code?: string }).code ?? err) });
        await pause(20 * random());
        continue;
      }
      const okAt = now();
      emit({
        type: 'ok',
        id,
        at: okAt,
        until: okAt + lock.remaining(),
        fences: { ...lock.fences },
      });
      const writes = 1 + Math.floor(random() * 3);
      for (let w = 0; w < writes; w++) {
        // Act only while the lock is believed valid; the guard refuses stale tokens anyway.
        if (lock.remaining() <= 0) break;
        const token = lock.fence as number;
        await lib
          .fencedCall(store, cfg.storeKey, token, 'RPUSH', [`${token} ${id}`])
          .catch(() => {});
        if (random() < 0.3) {
          try {
            await lock.extend();
            const at = now();
            emit({ type: 'deadline', id, at, until: at + lock.remaining() });
          } catch {
            // Lost or not confirmed: the old deadline stands.
          }
        }
        await pause((random() * cfg.holdMs) / writes);
      }
      emit({ type: 'release', id, at: now() });
      await lock.release().catch(() => {});
      await pause(random() * 10);
    }
  } finally {
    await redlock.close();
    store.disconnect();
  }
}

let ensemble: Ensemble;
let proxies: FaultProxy[] = [];
let store: Redis;
const children: ChildProcess[] = [];

beforeAll(async () => {
  // Nodes 0–2 hold the locks (through proxies); node 3 is the guarded store and never faulted.
  ensemble = await startEnsemble({ size: 4, appendonly: true });
  proxies = await Promise.all(
    ensemble.nodes.slice(0, 3).map((n) => startProxy({ host: n.host, port: n.port })),
  );
  store = ensemble.nodes[3]!.client();
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  store?.disconnect();
  await Promise.all(proxies.map((p) => p.close()));
  await ensemble?.stop();
});

/** Runs `clientLoop` in a child process on the built library; resolves with its events. */
function childClient(cfg: ClientConfig): Promise<ClientEvent[]> {
  const source = [
    `import { Redlock, fencedCall } from ${JSON.stringify(DIST.href)};`,
    `import { Redis } from 'ioredis';`,
    `const clientLoop = ${clientLoop.toString()};`,
    `const cfg = JSON.parse(process.argv.at(-1));`,
    `await clientLoop({ Redlock, fencedCall, Redis }, cfg, (e) => process.stdout.write(JSON.stringify(e) + '\\n'));`,
  ].join('\n');
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', source, JSON.stringify(cfg)],
    {
      cwd: new URL('../..', import.meta.url),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0)
        reject(new Error(`client ${cfg.name} exited with ${code}: ${err.slice(-2000)}`));
      else
        resolve(
          out
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as ClientEvent),
        );
    });
  });
}

/** The fault schedule: one fault at a time on one node, a mix of every kind the proxies and signals offer. */
async function injectFaults(log: string[]): Promise<void> {
  const [p0, p1, p2] = proxies as [FaultProxy, FaultProxy, FaultProxy];
  const [n0, n1, n2] = ensemble.nodes;
  const step = async (what: string, ms: number, fn: () => Promise<void> | void) => {
    log.push(what);
    await fn();
    await sleep(ms);
  };
  await sleep(800);
  await step('latency 30 ms on node 0', 1200, () => p0.setDelay(30));
  await step('latency off', 300, () => p0.setDelay(0));
  await step('hold node 1 traffic 600 ms, then deliver it late', 600, () => p1.hold());
  await step('flush node 1', 300, () => p1.flush());
  // Swallowed bytes leave a connection's replies out of step with its commands,
  // which TCP never does: a blackhole ends, as it would for real, with the
  // connections timing out (reset), not with the stream resuming.
  await step('blackhole node 2', 1000, () => p2.blackhole(true));
  await step('blackhole ends in resets', 300, () => {
    p2.reset();
    p2.blackhole(false);
  });
  await step('drop node 0 connections', 500, () => p0.drop());
  await step('reset node 1 connections', 500, () => p1.reset());
  await step('refuse node 2 connections', 700, () => {
    p2.refuse(true);
    p2.reset();
  });
  await step('accept node 2 again', 500, () => p2.refuse(false));
  await step('SIGSTOP node 0 for 1200 ms', 1200, () => n0!.pause());
  await step('SIGCONT node 0', 500, () => n0!.resume());
  await step('SIGKILL node 1, restart with its data', 500, async () => {
    await n1!.kill();
    await n1!.restart({ keepData: true });
  });
  // Without its data a node must stay away longer than any key can live.
  await step(`SIGKILL node 2, down ${2 * TTL} ms, restart empty`, 500, async () => {
    await n2!.kill();
    await sleep(2 * TTL);
    await n2!.restart({ keepData: false });
  });
  await step('latency 15 ms on nodes 0 and 1', 1500, () => {
    p0.setDelay(15);
    p1.setDelay(15);
  });
  await step('latency off', 0, () => {
    p0.setDelay(0);
    p1.setDelay(0);
  });
}

/** Builds the checker's history from every client's events and the store's log of accepted writes. */
function historyOf(events: Array<ClientEvent & { client: string }>, accepted: string[]): History {
  const h = emptyHistory();
  const byId = new Map<string, Acquisition>();
  for (const e of [...events].sort((a, b) => a.at - b.at)) {
    if (e.type === 'start') {
      const a: Acquisition = {
        id: e.id,
        client: e.client,
        resources: [RESOURCE],
        startedAt: e.at,
        okAt: null,
        endedAt: null,
        fences: {},
        deadlines: [],
        releasedAt: null,
        uses: [],
      };
      byId.set(e.id, a);
      h.acquisitions.push(a);
      continue;
    }
    const a = byId.get(e.id);
    if (!a) throw new Error(`event for unknown acquisition ${e.id}`);
    if (e.type === 'ok') {
      a.okAt = e.at;
      a.endedAt = e.at;
      a.fences = e.fences;
      a.deadlines.push({ at: e.at, until: e.until });
    } else if (e.type === 'deadline') {
      a.deadlines.push({ at: e.at, until: e.until });
    } else if (e.type === 'release') {
      a.releasedAt = e.at;
    } else {
      a.endedAt = e.at;
    }
  }
  // The guard appended accepted writes in the order it accepted them.
  accepted.forEach((entry, i) => {
    const [token, acquisition] = entry.split(' ');
    h.writes.push({
      at: i,
      resource: RESOURCE,
      token: Number(token),
      acquisition: acquisition!,
      accepted: true,
    });
  });
  return h;
}

describe('real servers under faults', () => {
  it('keeps mutual exclusion, growing tokens and a fenced store across proxy faults, SIGSTOP and SIGKILL', async () => {
    expect(existsSync(DIST), 'client processes run the built library: npm run build').toBe(true);
    const urls = proxies.map((p) => p.url);
    const config = (name: string, seed: number): ClientConfig => ({
      name,
      urls,
      storeUrl: ensemble.nodes[3]!.url,
      storeKey: STORE_KEY,
      resource: RESOURCE,
      ttl: TTL,
      wait: 3_000,
      holdMs: 60,
      durationMs: WORKLOAD_MS,
      seed,
      options: { nodeTimeout: 50, retry: { minDelay: 2, maxDelay: 40 } },
    });
    const events: Array<ClientEvent & { client: string }> = [];
    const tag = (client: string) => (e: ClientEvent) => events.push({ ...e, client });
    const faults: string[] = [];
    const lib = { Redlock, fencedCall, Redis };
    const runs = [
      ...['p1', 'p2'].map((name, i) =>
        childClient(config(name, 11 + i)).then((es) => {
          for (const e of es) tag(name)(e);
        }),
      ),
      ...['c1', 'c2'].map((name, i) => clientLoop(lib, config(name, 21 + i), tag(name))),
      injectFaults(faults),
    ];
    await Promise.all(runs);

    const accepted = await store.lrange(STORE_KEY, 0, -1);
    const h = historyOf(events, accepted);
    const held = h.acquisitions.filter((a) => a.okAt !== null);
    const clients = new Set(held.map((a) => a.client));
    const report = `${h.acquisitions.length} acquisitions, ${held.length} held by ${clients.size} clients, ${accepted.length} writes accepted; faults: ${faults.join('; ')}`;

    // The run exercised contention across processes, and the checker had something to judge.
    expect(clients, report).toEqual(new Set(['p1', 'p2', 'c1', 'c2']));
    expect(held.length, report).toBeGreaterThan(40);
    expect(accepted.length, report).toBeGreaterThan(40);
    expect(checkMutualExclusion(h), report).toEqual([]);
    expect(checkFenceOrder(h), report).toEqual([]);
    expect(checkFencedStore(h), report).toEqual([]);
    console.log(`faults.test: ${report}`);
  }, 90_000);

  it('catches the overlap on real servers when a node restarts without its data at once (canary)', async () => {
    const resource = 'canary:r';
    const storeKey = '{canary:store}:log';
    const ttl = 5_000;
    const now = () => performance.timeOrigin + performance.now();
    // c1 reaches the nodes through the proxies, c2 directly: only c1 is cut off from node 2.
    const c1 = new Redlock(
      proxies.map((p) => p.url),
      { ttl, nodeTimeout: 100 },
    );
    const c2 = new Redlock(ensemble.urls.slice(0, 3), { ttl, nodeTimeout: 100 });
    const h = emptyHistory();
    const record = (id: string, client: string, startedAt: number) => {
      const a: Acquisition = {
        id,
        client,
        resources: [resource],
        startedAt,
        okAt: null,
        endedAt: null,
        fences: {},
        deadlines: [],
        releasedAt: null,
        uses: [],
      };
      h.acquisitions.push(a);
      return a;
    };
    const granted = (a: Acquisition, lock: Awaited<ReturnType<Redlock['acquire']>>) => {
      const at = now();
      a.okAt = at;
      a.endedAt = at;
      a.fences = { ...lock.fences };
      a.deadlines.push({ at, until: at + lock.remaining() });
    };
    try {
      await (await c1.acquire('warm-up')).release();
      await (await c2.acquire('warm-up')).release();
      proxies[2]!.blackhole(true);
      const a1 = record('c1#0', 'c1', now());
      const l1 = await c1.acquire(resource, { wait: 2_000 });
      granted(a1, l1);
      proxies[2]!.reset();
      proxies[2]!.blackhole(false);
      // Node 0 forgets c1's key and comes back at once: the assumption this breaks.
      await ensemble.nodes[0]!.kill();
      await ensemble.nodes[0]!.restart({ keepData: false });
      const a2 = record('c2#0', 'c2', now());
      const l2 = await c2.acquire(resource, { wait: 4_000 });
      granted(a2, l2);
      expect(l1.remaining(), 'c1 still believes it holds the lock').toBeGreaterThan(0);
      // Both write through the guard; c2 first, then the stale holder.
      const w2 = await fencedCall(store, storeKey, l2.fence!, 'RPUSH', [`${l2.fence} c2#0`]);
      const w1 = await fencedCall(store, storeKey, l1.fence!, 'RPUSH', [`${l1.fence} c1#0`]);
      expect([w2.accepted, w1.accepted]).toEqual([true, false]);
      (await store.lrange(storeKey, 0, -1)).forEach((entry, i) => {
        const [token, acquisition] = entry.split(' ');
        h.writes.push({
          at: i,
          resource,
          token: Number(token),
          acquisition: acquisition!,
          accepted: true,
        });
      });
      expect(checkMutualExclusion(h)).toHaveLength(1);
      expect(checkFenceOrder(h)).toEqual([]);
      expect(checkFencedStore(h)).toEqual([]);
      a1.releasedAt = now();
      a2.releasedAt = now();
      await Promise.allSettled([l1.release(), l2.release()]);
    } finally {
      await Promise.all([c1.close(), c2.close()]);
    }
  }, 60_000);
});
