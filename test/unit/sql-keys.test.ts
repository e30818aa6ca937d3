import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/index.js';
import { MySqlLocks } from '../../src/mysql/index.js';
import { PostgresLocks } from '../../src/postgres/index.js';
import { lockKey, lockName } from '../../src/sql/keys.js';

describe('SQL lock keys', () => {
  it('are frozen: the same name gives the same key in every version', () => {
    expect(lockKey('invoice:42')).toBe(-1925800494516301556n);
    expect(lockKey('job:nightly')).toBe(4762561428158757106n);
    expect(lockKey('ünïcode')).toBe(1604517325680604613n);
    expect(lockName(lockKey('invoice:42'))).toBe('quorumlock:e5462ea75015910c');
  });

  it('are the first 8 bytes of SHA-256("quorumlock:v1:" + name), big-endian signed, as documented', () => {
    for (const name of ['a', 'b:1', 'x'.repeat(300)]) {
      const digest = createHash('sha256').update(`quorumlock:v1:${name}`).digest();
      expect(lockKey(name)).toBe(digest.readBigInt64BE(0));
    }
  });

  it('name MySQL locks within 64 characters, in lower case', () => {
    const name = lockName(lockKey('x'.repeat(1000)));
    expect(name.length).toBe(27);
    expect(name).toBe(name.toLowerCase());
  });
});

describe('SQL providers reject bad input before any I/O', () => {
  it.each([
    ['a URL of another scheme', () => new PostgresLocks('mysql://h/db')],
    ['a URL that does not parse', () => new MySqlLocks('mysql://')],
    ['a URL that is not a string', () => new PostgresLocks(42 as never)],
    ['an unknown option', () => new PostgresLocks('postgres://h/db', { quorum: 2 } as never)],
    ['a bad ttl', () => new MySqlLocks('mysql://h/db', { ttl: 0 })],
    [
      'a fence table that is not a name',
      () => new PostgresLocks('postgres://h/db', { fenceTable: 'x; DROP TABLE y' }),
    ],
    ['a bad connect timeout', () => new MySqlLocks('mysql://h/db', { connectTimeout: -1 })],
    ['a fractional maxIdle', () => new PostgresLocks('postgres://h/db', { maxIdle: 1.5 })],
  ])('%s', (_name, make) => {
    expect(make).toThrow(InvalidArgumentError);
  });
});
