/**
 * `quorumlock doctor` on a `zk://` URL: asks every listed server with the
 * four-letter words `srvr` and `conf` (whitelisted by default: `srvr`; add
 * `conf` and `mntr` to `4lw.commands.whitelist` for the full report) whether
 * it serves, in which role (the leader's followers in sync, from `mntr`), at
 * which version and with which session bounds,
 * then opens one session the way the library does. It writes nothing.
 */
import { createConnection } from 'node:net';
import { systemClock } from '../clock.js';
import { openZkClient } from '../zookeeper/client.js';
import { parseZooKeeperUrl } from '../zookeeper/index.js';
import { waitConnected } from '../zookeeper/session.js';
import type { Check, DoctorReport, NodeReport } from './doctor.js';

/** Options of runZooKeeperDoctor. */
export interface ZooKeeperDoctorOptions {
  /** Per-server timeout, ms. */
  readonly timeoutMs: number;
  /** The session timeout (the providers' `ttl`) to check against the servers' bounds, ms. */
  readonly ttl: number;
}

/** What doctor learned of one listed server. @internal */
export interface ServerView {
  readonly node: string;
  readonly checks: Check[];
  mode?: string;
  members?: number;
  /** On the leader, from `mntr`: followers in sync with it. */
  syncedFollowers?: number;
  bounds?: { min: number; max: number };
}

/** Runs the checks on every server of the URL and on the ensemble. */
export async function runZooKeeperDoctor(
  url: string,
  options: ZooKeeperDoctorOptions,
): Promise<DoctorReport> {
  const { hosts } = parseZooKeeperUrl(url);
  const views = await Promise.all(hosts.split(',').map((h) => probeServer(h, options)));
  const members = Math.max(1, ...views.map((v) => v.members ?? 0));
  const quorum = Math.floor(members / 2) + 1;
  const ensemble = [...ensembleChecks(views, members, quorum), await sessionCheck(hosts, options)];
  const all = [...views.flatMap((v) => v.checks), ...ensemble];
  const counts = { pass: 0, warn: 0, fail: 0 };
  for (const c of all) counts[c.status]++;
  return {
    quorum,
    nodes: views.map((v): NodeReport => ({ node: v.node, checks: v.checks })),
    ensemble,
    counts,
    ok: counts.fail === 0,
  };
}

async function probeServer(node: string, options: ZooKeeperDoctorOptions): Promise<ServerView> {
  const view: ServerView = { node, checks: [] };
  const [host, port] = splitHost(node);
  const started = performance.now();
  let srvr: string;
  try {
    srvr = await fourLetterWord(host, port, 'srvr', options.timeoutMs);
  } catch (err) {
    view.checks.push({
      name: 'reachable',
      status: 'fail',
      detail: `no answer: ${err instanceof Error ? err.message : String(err)}`,
      fix: 'start the server or fix the address; every listed server should be reachable',
    });
    return view;
  }
  const ms = performance.now() - started;
  if (/not in the whitelist/.test(srvr)) {
    view.checks.push({
      name: 'reachable',
      status: 'warn',
      detail: `answers in ${ms.toFixed(1)} ms, but srvr is not whitelisted`,
      fix: 'add srvr,conf,mntr to 4lw.commands.whitelist so its role and bounds can be checked',
    });
    return view;
  }
  view.checks.push({ name: 'reachable', status: 'pass', detail: `srvr in ${ms.toFixed(1)} ms` });
  const mode = /^Mode: (\w+)/m.exec(srvr)?.[1];
  if (mode === undefined) {
    view.checks.push({
      name: 'serving',
      status: 'fail',
      detail: 'not serving requests (no quorum of its ensemble, or still electing)',
      fix: 'bring a majority of the ensemble up; a server without quorum refuses every client',
    });
  } else {
    view.mode = mode;
    view.checks.push({ name: 'serving', status: 'pass', detail: `serving as ${mode}` });
    if (mode === 'leader') {
      const mntr = await fourLetterWord(host, port, 'mntr', options.timeoutMs).catch(() => '');
      const synced = /^zk_synced_followers\s+(\d+)/m.exec(mntr)?.[1];
      if (synced !== undefined) view.syncedFollowers = Number(synced);
    }
  }
  const version = /^Zookeeper version: (\d+)\.(\d+)\.(\d+)/m.exec(srvr);
  if (version) {
    const [major, minor] = [Number(version[1]), Number(version[2])];
    const text = `${version[1]}.${version[2]}.${version[3]}`;
    view.checks.push(
      major > 3 || (major === 3 && minor >= 5)
        ? { name: 'version', status: 'pass', detail: `${text}: container nodes for lock parents` }
        : {
            name: 'version',
            status: 'warn',
            detail: `${text}: no container nodes; empty lock parents are deleted by clients`,
            fix: 'upgrade to ZooKeeper 3.5 or later',
          },
    );
  }
  const conf = await fourLetterWord(host, port, 'conf', options.timeoutMs).catch(() => '');
  const min = Number(/^minSessionTimeout=(\d+)/m.exec(conf)?.[1]);
  const max = Number(/^maxSessionTimeout=(\d+)/m.exec(conf)?.[1]);
  view.members = (conf.match(/^server\.\d+=.*participant/gm) ?? []).length || undefined;
  if (mode === 'standalone') view.members = 1;
  if (Number.isFinite(min) && Number.isFinite(max) && max > 0) {
    view.bounds = { min, max };
    const clamped = Math.min(max, Math.max(min, options.ttl));
    view.checks.push(
      clamped === options.ttl
        ? {
            name: 'session',
            status: 'pass',
            detail: `timeouts ${min}–${max} ms; ttl ${options.ttl} ms fits`,
          }
        : {
            name: 'session',
            status: 'warn',
            detail: `timeouts ${min}–${max} ms: a ttl of ${options.ttl} ms becomes ${clamped} ms`,
            fix: `use a ttl within ${min}–${max} ms, or change minSessionTimeout/maxSessionTimeout (2 and 20 ticks by default)`,
          },
    );
  } else if (conf !== '' && !/not currently serving/.test(conf)) {
    view.checks.push({
      name: 'session',
      status: 'warn',
      detail: 'conf is not whitelisted: session bounds unknown',
      fix: 'add conf to 4lw.commands.whitelist',
    });
  }
  return view;
}

/** The ensemble-wide checks from the views of the listed servers. @internal */
export function ensembleChecks(
  views: readonly ServerView[],
  members: number,
  quorum: number,
): Check[] {
  const checks: Check[] = [];
  const serving = views.filter((v) => v.mode !== undefined);
  const leaders = serving.filter((v) => v.mode === 'leader' || v.mode === 'standalone');
  const known = views.some((v) => v.members !== undefined);
  // More listed servers down than the ensemble can lose: no quorum, even if a
  // survivor has not noticed yet (it keeps its role until its sync timeout).
  const lost = known && views.length - serving.length > members - quorum;
  checks.push(
    serving.length > 0 && !lost
      ? {
          name: 'quorum',
          status: 'pass',
          detail:
            `${serving.length} of ${views.length} listed servers serve` +
            (known ? `; ensemble of ${members}, quorum ${quorum}` : ''),
        }
      : {
          name: 'quorum',
          status: 'fail',
          detail:
            serving.length > 0
              ? `${views.length - serving.length} of ${views.length} listed servers do not serve; an ensemble of ${members} needs ${quorum}: no quorum`
              : 'no listed server serves requests: the ensemble has no quorum',
          fix: known
            ? `bring a majority (${quorum} of ${members}) of the servers up`
            : 'bring a majority of the servers up',
        },
  );
  if (serving.length > 0) {
    checks.push(
      leaders.length === 1
        ? {
            name: 'leader',
            status: 'pass',
            detail:
              `${leaders[0]!.node} (${leaders[0]!.mode})` +
              (leaders[0]!.syncedFollowers === undefined
                ? ''
                : `, ${leaders[0]!.syncedFollowers} followers in sync`),
          }
        : {
            name: 'leader',
            status: 'warn',
            detail:
              leaders.length === 0
                ? 'the leader is not among the listed servers'
                : `${leaders.length} listed servers say they lead`,
            fix: 'list every server of the ensemble in the URL',
          },
    );
  }
  if (known) {
    if (views.length < members) {
      checks.push({
        name: 'listed',
        status: 'warn',
        detail: `${views.length} of the ensemble's ${members} servers are listed`,
        fix: 'list every server, so clients fail over to any of them',
      });
    }
    if (members > 1 && members % 2 === 0) {
      checks.push({
        name: 'odd',
        status: 'warn',
        detail: `${members} servers tolerate no more failures than ${members - 1}`,
        fix: 'run an odd number of servers (3 or 5)',
      });
    } else if (members > 1) {
      const spare = serving.length - quorum;
      checks.push({
        name: 'failures',
        status: spare >= 1 ? 'pass' : 'warn',
        detail: `${Math.max(0, spare)} more server failure(s) tolerated now`,
        ...(spare >= 1 ? {} : { fix: 'restart the servers that are down' }),
      });
    }
  }
  return checks;
}

/** Opens a session the way the library does; reports the negotiated timeout. */
async function sessionCheck(hosts: string, options: ZooKeeperDoctorOptions): Promise<Check> {
  let client: Awaited<ReturnType<typeof openZkClient>> | undefined;
  try {
    client = await openZkClient({ hosts, sessionTimeout: options.ttl, clock: systemClock });
    await waitConnected(client, systemClock, systemClock.now() + options.timeoutMs);
    return {
      name: 'client',
      status: 'pass',
      detail: `session 0x${client.sessionId.toString(16)} granted ${client.sessionTimeout} ms (asked ${options.ttl})`,
    };
  } catch (err) {
    return {
      name: 'client',
      status: 'fail',
      detail: `no session: ${err instanceof Error ? err.message : String(err)}`,
      fix: 'check that a majority of the ensemble serves and the client package is installed',
    };
  } finally {
    await client?.close();
  }
}

function splitHost(node: string): [string, number] {
  const at = node.lastIndexOf(':');
  return [node.slice(0, at).replace(/^\[|\]$/g, ''), Number(node.slice(at + 1))];
}

/** Sends a four-letter word and resolves with the whole reply. */
function fourLetterWord(
  host: string,
  port: number,
  word: string,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = '';
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply to ${word} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => socket.write(word));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}
