// Real ZooKeeper servers for tests and benchmarks: a 1-node server or an
// N-node ensemble on free 127.0.0.1 ports, each in its own temp dir with its own
// zoo.cfg (short tickTime, admin server off, four-letter words whitelisted), run
// from Debian's `zookeeper` package with the machine's java. Servers are only
// ever stopped by their pid, and die with this process however it ends.
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts, HOST, removeDir, spawnServer, stopChild, tempDir } from './processes.mjs';

/** Debian's jar; its manifest's Class-Path names every library the server needs. */
const JARS = ['/usr/share/java/zookeeper.jar', '/usr/share/zookeeper/zookeeper.jar'];
/** How long a server may take to serve requests after its start (a JVM on a busy machine). */
const READY_TIMEOUT_MS = 60_000;
/** Four-letter words the harness and `quorumlock doctor` use. */
export const FOUR_LETTER_WORDS = 'srvr,mntr,conf,ruok,stat';

/** Where the server comes from; throws with install advice when it is missing. */
export function zookeeperJar() {
  for (const jar of JARS) {
    try {
      accessSync(jar, constants.R_OK);
      return jar;
    } catch {
      // Not here.
    }
  }
  throw new Error(
    "ZooKeeper is needed for these tests: install Debian's package (`apt-get install zookeeper`, not zookeeperd) so /usr/share/java/zookeeper.jar exists",
  );
}

function javaPath() {
  for (const dir of [
    ...(process.env.JAVA_HOME ? [join(process.env.JAVA_HOME, 'bin')] : []),
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/bin',
  ]) {
    const candidate = join(dir, 'java');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Keep looking.
    }
  }
  throw new Error('java is needed to run ZooKeeper: install openjdk-17-jre-headless');
}

/**
 * Starts `size` ZooKeeper servers (1: standalone; 3 or more: one ensemble) and
 * waits until every one of them serves requests.
 * @param {{ size?: number, tickTime?: number }} [opts]
 */
export async function startZooKeeper(opts = {}) {
  const size = opts.size ?? 1;
  const tickTime = opts.tickTime ?? 200;
  if (!Number.isInteger(size) || size < 1) throw new Error(`size must be ≥ 1, got ${size}`);
  const jar = zookeeperJar();
  const java = javaPath();
  const ports = await freePorts(size * 3);
  const members = Array.from({ length: size }, (_, i) => ({
    index: i,
    clientPort: ports[3 * i],
    peerPort: ports[3 * i + 1],
    electionPort: ports[3 * i + 2],
  }));
  const servers = members.map((m) => new ZkServer(java, jar, m, members, tickTime));
  try {
    await Promise.all(servers.map((s) => s.start()));
    if (size > 1) await Promise.all(servers.map((s) => s.waitServing()));
  } catch (err) {
    await Promise.all(servers.map((s) => s.dispose()));
    throw err;
  }
  const hosts = servers.map((s) => `${HOST}:${s.port}`).join(',');
  let stopping;
  return {
    servers,
    /** `host:port,host:port,...` */
    hosts,
    /** `zk://host:port,...` plus `chroot` when given. */
    url(chroot = '') {
      return `zk://${hosts}${chroot}`;
    },
    stop() {
      stopping ??= Promise.all(servers.map((s) => s.dispose())).then(() => {});
      return stopping;
    },
  };
}

class ZkServer {
  constructor(java, jar, member, members, tickTime) {
    this.java = java;
    this.jar = jar;
    this.index = member.index;
    this.port = member.clientPort;
    this.host = HOST;
    this.members = members;
    this.tickTime = tickTime;
    this.child = undefined;
    this.paused = false;
    this.dir = tempDir(`quorumlock-zk-${member.index}-`);
    mkdirSync(join(this.dir, 'data'));
    const lines = [
      `tickTime=${tickTime}`,
      'initLimit=20',
      'syncLimit=5',
      `dataDir=${join(this.dir, 'data')}`,
      `clientPort=${this.port}`,
      `clientPortAddress=${HOST}`,
      'admin.enableServer=false',
      `4lw.commands.whitelist=${FOUR_LETTER_WORDS}`,
      'maxClientCnxns=0',
      'autopurge.purgeInterval=0',
    ];
    if (members.length > 1) {
      writeFileSync(join(this.dir, 'data', 'myid'), `${member.index + 1}\n`);
      // An ensemble on one machine: fail over fast when a member dies.
      lines.push('cnxTimeout=500', 'electionPortBindRetry=5');
      for (const m of members) {
        lines.push(`server.${m.index + 1}=${HOST}:${m.peerPort}:${m.electionPort}`);
      }
    }
    writeFileSync(join(this.dir, 'zoo.cfg'), `${lines.join('\n')}\n`);
  }

  /** The server's pid while it runs. */
  get pid() {
    return this.child?.pid;
  }

  /** `zk://127.0.0.1:<port>`. */
  get url() {
    return `zk://${HOST}:${this.port}`;
  }

  get running() {
    return this.child !== undefined;
  }

  /** Starts the server (again, keeping its data) and waits until it serves requests. */
  async start() {
    if (this.child) return;
    const main =
      this.members.length > 1
        ? 'org.apache.zookeeper.server.quorum.QuorumPeerMain'
        : 'org.apache.zookeeper.server.ZooKeeperServerMain';
    const child = await spawnServer(
      this.java,
      [
        '-Xmx128m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-Dzookeeper.admin.enableServer=false',
        // Empty container nodes go within a second instead of a minute.
        '-Dznode.container.checkIntervalMs=250',
        '-cp',
        this.jar,
        main,
        join(this.dir, 'zoo.cfg'),
      ],
      { cwd: this.dir, name: `ZooKeeper server ${this.index}` },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-2000);
    });
    this.child = child;
    let exited;
    child.exited.then((how) => {
      exited = `ZooKeeper server ${this.index} exited (${how}): ${stderr.trim()}`;
      if (this.child === child) this.child = undefined;
    });
    if (this.members.length === 1) await this.waitServing(() => exited);
  }

  /** Polls `srvr` until the server says it serves (standalone, leader or follower). */
  async waitServing(exited = () => (this.child ? undefined : 'not running')) {
    const deadline = performance.now() + READY_TIMEOUT_MS;
    for (;;) {
      const reason = exited();
      if (reason) throw new Error(reason);
      const mode = await this.mode();
      if (mode) return mode;
      if (performance.now() > deadline) {
        throw new Error(`ZooKeeper server ${this.index} not serving after ${READY_TIMEOUT_MS} ms`);
      }
      await sleep(50);
    }
  }

  /** `standalone`, `leader` or `follower` while serving; undefined otherwise. */
  async mode() {
    const reply = await fourLetterWord(this.port, 'srvr', 1000).catch(() => '');
    return /^Mode: (\w+)/m.exec(reply)?.[1];
  }

  /** Sends a four-letter word and resolves with the reply. */
  fourLetter(word, timeoutMs = 2000) {
    return fourLetterWord(this.port, word, timeoutMs);
  }

  /** Crash (SIGKILL); resolves once the server has exited. */
  async kill() {
    if (!this.child) return;
    this.paused = false;
    await stopChild(this.child, 'SIGKILL');
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered. */
  pause() {
    if (!this.child || this.paused) return;
    process.kill(this.child.pid, 'SIGSTOP');
    this.paused = true;
  }

  /** Unfreezes a paused server (SIGCONT). */
  resume() {
    if (!this.child || !this.paused) return;
    process.kill(this.child.pid, 'SIGCONT');
    this.paused = false;
  }

  async dispose() {
    await this.kill().catch(() => {});
    removeDir(this.dir);
  }
}

/**
 * Waits until every running server of an ensemble serves requests (one is the
 * leader). A standalone server is ready once `start()` resolves.
 */
export async function waitForQuorum(zk) {
  await Promise.all(zk.servers.filter((s) => s.running).map((s) => s.waitServing()));
}

/** Sends `word` to 127.0.0.1:`port` and resolves with everything the server wrote back. */
export async function fourLetterWord(port, word, timeoutMs = 2000) {
  const socket = net.connect({ host: HOST, port });
  socket.setTimeout(timeoutMs, () =>
    socket.destroy(new Error(`${word} on port ${port}: no reply within ${timeoutMs} ms`)),
  );
  socket.write(word);
  const chunks = [];
  for await (const chunk of socket) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}
