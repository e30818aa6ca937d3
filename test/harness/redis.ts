/**
 * Where the test harness gets Redis from: a `redis-server` binary on PATH, a
 * Docker engine through Testcontainers, or (as root on Debian-like systems) a
 * binary installed with apt-get on first use.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** How ensembles start their nodes: a local binary, or `redis:7` containers. */
export type RedisSource =
  | { readonly kind: 'binary'; readonly path: string }
  | { readonly kind: 'docker'; readonly image: string };

/** The image used when Redis runs in containers. */
export const REDIS_IMAGE = 'redis:7';

let cached: Promise<RedisSource> | undefined;

/**
 * Finds redis-server once per process: PATH first, then a running Docker
 * engine, then apt-get when running as root; throws with install advice otherwise.
 */
export function redisSource(): Promise<RedisSource> {
  cached ??= resolve().catch((err: unknown) => {
    // A failed lookup is not cached, so a later call can succeed after an install.
    cached = undefined;
    throw err;
  });
  return cached;
}

async function resolve(): Promise<RedisSource> {
  const onPath = findOnPath('redis-server');
  if (onPath) return { kind: 'binary', path: onPath };

  if (dockerAnswers()) return { kind: 'docker', image: REDIS_IMAGE };

  if (process.getuid?.() === 0 && findOnPath('apt-get')) {
    console.log('quorumlock tests: redis-server not found, installing it with apt-get');
    // Parallel test workers may race for the dpkg lock; wait for it instead of failing.
    const wait = ['-o', 'DPkg::Lock::Timeout=300'];
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [
      [...wait, 'update'],
      [...wait, 'install', '-y', 'redis-server'],
    ]) {
      const res = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'pipe'], env });
      if (res.status !== 0) {
        throw new Error(
          `apt-get ${args.slice(wait.length).join(' ')} failed (${res.status ?? res.signal}): ` +
            String(res.stderr ?? '').trim(),
        );
      }
    }
    const installed =
      findOnPath('redis-server') ?? findIn(['/usr/bin', '/usr/sbin'], 'redis-server');
    if (installed) return { kind: 'binary', path: installed };
  }

  throw new Error(
    'redis-server is needed for these tests: install it (`apt-get install redis-server` or ' +
      '`brew install redis`) so it is on PATH, or start a Docker engine.',
  );
}

function findOnPath(name: string): string | undefined {
  return findIn((process.env.PATH ?? '').split(delimiter).filter(Boolean), name);
}

function findIn(dirs: readonly string[], name: string): string | undefined {
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; keep looking.
    }
  }
  return undefined;
}

function dockerAnswers(): boolean {
  if (!findOnPath('docker')) return false;
  const res = spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 15_000 });
  return res.status === 0;
}
