import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidArgumentError, type MissingDriverError } from '../../src/errors.js';
import { splitNodeList } from '../../src/provider.js';
import { resourcePath } from '../../src/zookeeper/backend.js';
import { parseZooKeeperUrl, ZooKeeperLocks } from '../../src/zookeeper/index.js';
import { protectedPrefix, queueOrder, sequenceOf } from '../../src/zookeeper/recipe.js';

describe('zk:// URLs', () => {
  it('parses hosts with default ports and the chroot, or the default base', () => {
    expect(parseZooKeeperUrl('zk://a:2181,b,c:2182/app/locks')).toEqual({
      hosts: 'a:2181,b:2181,c:2182',
      base: '/app/locks',
    });
    expect(parseZooKeeperUrl('zk://127.0.0.1:2181')).toEqual({
      hosts: '127.0.0.1:2181',
      base: '/quorumlock',
    });
    expect(parseZooKeeperUrl('zk://[::1]:2181/x').hosts).toBe('[::1]:2181');
  });

  it('rejects credentials, queries, bad ports and bad paths before any I/O', () => {
    for (const bad of [
      'zk://user:pw@a:2181/x',
      'zk://a:2181/x?session=1',
      'zk://a:99999',
      'zk://a:2181/x/',
      'zk://a:2181/x//y',
      'zk://a:2181/zookeeper',
      'redis://a:6379',
      'zk://',
    ]) {
      expect(() => parseZooKeeperUrl(bad), bad).toThrow(InvalidArgumentError);
    }
    expect(() => new ZooKeeperLocks('zk://a:2181', { ttl: -1 })).toThrow(InvalidArgumentError);
    expect(() => new ZooKeeperLocks('zk://a:2181', { quorum: 2 } as never)).toThrow(
      InvalidArgumentError,
    );
  });

  it('is never split at its commas in a node list', () => {
    expect(splitNodeList('zk://a:2181,b:2181,c:2181/locks')).toEqual([
      'zk://a:2181,b:2181,c:2181/locks',
    ]);
  });
});

describe('lock node names', () => {
  it('makes one node of any resource name', () => {
    expect(resourcePath('/locks', 'invoice:42')).toBe('/locks/invoice%3A42');
    expect(resourcePath('/locks', 'a/b')).toBe('/locks/a%2Fb');
    expect(resourcePath('/locks', '..')).toBe('/locks/%2E%2E');
    expect(resourcePath('/', 'r')).toBe('/r');
  });

  it('orders a queue by sequence, whatever the protected prefix', () => {
    const a = `${protectedPrefix('ffff')}0000000003`;
    const b = `${protectedPrefix('0000')}0000000010`;
    const c = `${protectedPrefix('aaaa')}0000000001`;
    expect(sequenceOf(b)).toBe(10);
    expect(queueOrder([a, b, 'foreign', c])).toEqual([c, a, b]);
  });
});

describe('a missing driver', () => {
  afterEach(() => {
    vi.doUnmock('node-zookeeper-client');
    vi.resetModules();
  });

  it('fails connect() at once with MissingDriverError naming node-zookeeper-client', async () => {
    vi.resetModules();
    vi.doMock('node-zookeeper-client', () => {
      throw new Error("Cannot find package 'node-zookeeper-client'");
    });
    const { connect } = await import('../../src/provider.js');
    const error = await connect('zk://127.0.0.1:1/x').then(
      () => undefined,
      (err: unknown) => err,
    );
    const { MissingDriverError: Fresh } = await import('../../src/errors.js');
    expect(error).toBeInstanceOf(Fresh);
    expect((error as MissingDriverError).packageName).toBe('node-zookeeper-client');
    expect((error as MissingDriverError).code).toBe('ERR_LOCK_DRIVER_MISSING');
  });
});
