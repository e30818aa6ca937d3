/**
 * Redis over TLS for real: redis-server with `--tls-port` and certificates
 * made by openssl. Locks through ioredis instances carrying the CA and a
 * client certificate, `rediss://` URLs on the command line with the CA
 * trusted through NODE_EXTRA_CA_CERTS, and what `doctor` says when the
 * certificate is not one the client trusts.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redlock } from '../../src/index.js';
import { nextExtend } from '../harness/rounds.js';
import {
  type Certificates,
  makeCertificates,
  startTlsEnsemble,
  type TlsEnsemble,
} from '../harness/tls.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const execFileAsync = promisify(execFile);

let certs: Certificates;
/** Three masters that require a client certificate. */
let mutual: TlsEnsemble;
/** One master that accepts clients without a certificate, as a rediss:// URL reaches it. */
let serverOnly: TlsEnsemble;

beforeAll(async () => {
  certs = await makeCertificates();
  [mutual, serverOnly] = await Promise.all([
    startTlsEnsemble(certs, 3, 'yes'),
    startTlsEnsemble(certs, 1, 'optional'),
  ]);
});

afterAll(async () => {
  await Promise.all([mutual?.stop(), serverOnly?.stop()]);
  await certs?.remove();
});

/** Runs the built CLI; resolves with its exit code and output, whatever the code. */
async function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('TLS nodes', () => {
  it('acquire, renewal, a multi-resource lock and increasing fences work through TLS with client certificates', async () => {
    const clients = mutual.clients();
    // A renewal every second or so; a ttl long enough for a loaded machine to keep the lock.
    const redlock = new Redlock(clients, { ttl: 3_000 });
    try {
      const renewed = nextExtend('tls:job');
      const lock = await redlock.acquire('tls:job', { renew: true });
      await renewed;
      expect(lock.signal.aborted).toBe(false);
      expect(lock.nodes.filter((n) => n.status === 'acquired').length).toBeGreaterThanOrEqual(2);
      await lock.release();

      const both = await redlock.acquire(['tls:a', 'tls:b']);
      expect(Object.keys(both.fences ?? {}).sort()).toEqual(['tls:a', 'tls:b']);
      await both.release();

      const first = await redlock.acquire('tls:fenced');
      await first.release();
      const second = await redlock.acquire('tls:fenced');
      await second.release();
      expect(second.fence).toBeGreaterThan(first.fence!);
    } finally {
      await redlock.close();
      for (const c of clients) c.disconnect();
      await mutual.flush();
    }
  });

  it('runs a command under a lock on rediss:// URLs when NODE_EXTRA_CA_CERTS trusts the CA', async () => {
    const r = await cli(
      [
        'run',
        '--nodes',
        serverOnly.urls.join(','),
        'tls:cli',
        '--',
        process.execPath,
        '-e',
        'console.log(process.env.QUORUMLOCK_FENCE)',
      ],
      { NODE_EXTRA_CA_CERTS: certs.caFile },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^[1-9]\d*$/);
  });

  it('doctor passes a TLS node whose CA is trusted', async () => {
    const r = await cli(['doctor', '--nodes', serverOnly.urls.join(',')], {
      NODE_EXTRA_CA_CERTS: certs.caFile,
    });
    expect(r.stdout).toMatch(/reachable/);
    expect(r.stdout).not.toMatch(/certificate/i);
  });

  it('doctor fails with a clear message on a TLS node signed by a CA the client does not trust', async () => {
    const r = await cli(['doctor', '--nodes', serverOnly.urls.join(',')], {
      NODE_EXTRA_CA_CERTS: certs.wrongCaFile,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/certificate/i);
    expect(r.stdout).toMatch(/not signed by a CA this client trusts/);
    expect(r.stdout).toMatch(/NODE_EXTRA_CA_CERTS/);
  });

  it('doctor says the node wants TLS when a redis:// URL points at a TLS port', async () => {
    const plainUrl = serverOnly.urls[0]!.replace('rediss://', 'redis://');
    const r = await cli(['doctor', '--nodes', plainUrl], {});
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('this port speaks TLS');
    expect(r.stdout).toContain(`use ${serverOnly.urls[0]}`);
  });

  it('doctor says a TLS node may want a client certificate when it closes the connection', async () => {
    const r = await cli(['doctor', '--nodes', mutual.urls[0]!], {
      NODE_EXTRA_CA_CERTS: certs.caFile,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/tls-auth-clients yes/);
    expect(r.stdout).toMatch(/tls: \{ ca, cert, key \}/);
  });
});
