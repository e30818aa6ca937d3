/**
 * Redis over TLS for integration tests: certificates made with openssl (a CA,
 * a server certificate for 127.0.0.1 and localhost, a client certificate, and
 * an unrelated CA for the wrong-CA cases), and redis-server masters that
 * listen with `--tls-port` beside their plain port (which the harness keeps
 * for PING, FLUSHALL and teardown).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from '../../src/cli/ensemble.js';
import { type Ensemble, startEnsemble } from './ensemble.js';

const run = promisify(execFile);

/** PEM files (paths) and their contents, made fresh for one test file. */
export interface Certificates {
  readonly dir: string;
  /** The CA that signed the server and client certificates. */
  readonly caFile: string;
  /** A CA that signed nothing here: trusting only it must fail verification. */
  readonly wrongCaFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  readonly ca: string;
  readonly wrongCa: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** Removes the files. */
  remove(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

/** Makes a CA, a server and a client certificate (and an unrelated CA) with openssl. */
export async function makeCertificates(): Promise<Certificates> {
  const dir = await mkdtemp(join(tmpdir(), 'quorumlock-tls-'));
  const days = ['-days', '2'];
  // A new key and either a self-signed CA certificate or a request for the CA to sign.
  const newKey = (name: string, output: string[]) =>
    openssl(
      [
        ...['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`],
        ...['-subj', `/CN=quorumlock test ${name}`, ...output],
      ],
      dir,
    );
  const ca = (name: string) => newKey(name, ['-x509', '-out', `${name}.pem`, ...days]);
  const leaf = async (name: string) => {
    await newKey(name, ['-out', `${name}.csr`]);
    await openssl(
      [
        ...['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key'],
        ...['-CAcreateserial', '-out', `${name}.pem`, ...days, '-extfile', `${name}.ext`],
      ],
      dir,
    );
  };
  await Promise.all([ca('ca'), ca('wrong-ca')]);
  await writeFile(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  await leaf('server');
  await leaf('client');
  const read = (name: string) => readFile(join(dir, name), 'utf8');
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    wrongCaFile: join(dir, 'wrong-ca.pem'),
    serverCertFile: join(dir, 'server.pem'),
    serverKeyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.pem'),
    clientKeyFile: join(dir, 'client.key'),
    ca: await read('ca.pem'),
    wrongCa: await read('wrong-ca.pem'),
    clientCert: await read('client.pem'),
    clientKey: await read('client.key'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** One TLS node: the harness's plain node plus the TLS port it also listens on. */
export interface TlsNode {
  readonly plain: Ensemble;
  readonly tlsPort: number;
  /** `rediss://127.0.0.1:<tlsPort>`. */
  readonly url: string;
}

/** A set of independent TLS masters. */
export interface TlsEnsemble {
  readonly nodes: TlsNode[];
  /** The nodes' `rediss://` URLs. */
  readonly urls: string[];
  /** ioredis clients over TLS with the CA and client certificate (the caller quits them). */
  clients(options?: RedisOptions): Redis[];
  /** FLUSHALL on every node (through the plain port). */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/** How TLS nodes treat client certificates. */
export type ClientAuth = 'yes' | 'optional' | 'no';

/**
 * Starts `size` redis-server masters with TLS on 127.0.0.1. `clientAuth`
 * 'yes' (the default) refuses clients without a certificate signed by the CA.
 */
export async function startTlsEnsemble(
  certs: Certificates,
  size: number,
  clientAuth: ClientAuth = 'yes',
): Promise<TlsEnsemble> {
  const nodes: TlsNode[] = [];
  try {
    for (let i = 0; i < size; i++) {
      const tlsPort = await freePort();
      const plain = await startEnsemble({
        size: 1,
        args: [
          ...['--tls-port', String(tlsPort)],
          ...['--tls-cert-file', certs.serverCertFile],
          ...['--tls-key-file', certs.serverKeyFile],
          ...['--tls-ca-cert-file', certs.caFile],
          ...['--tls-auth-clients', clientAuth],
        ],
      });
      nodes.push({ plain, tlsPort, url: `rediss://127.0.0.1:${tlsPort}` });
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.plain.stop()));
    throw err;
  }
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    clients: (options = {}) =>
      nodes.map(
        (n) =>
          new Redis({
            host: '127.0.0.1',
            port: n.tlsPort,
            tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
            ...options,
          }),
      ),
    flush: async () => {
      await Promise.all(nodes.map((n) => n.plain.nodes[0]!.flush()));
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.plain.stop()));
    },
  };
}
