import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  fencedCall,
  fencedClaim,
  fencedDel,
  fencedSet,
  highestFence,
  highestFenceKey,
} from '../../src/redis/guard.js';

/** Stands in for a client only to prove that bad input never reaches it: any use is recorded. */
function untouchable(): { redis: Redis; touched: string[] } {
  const touched: string[] = [];
  const redis = new Proxy(
    {},
    {
      get(_target, prop) {
        touched.push(String(prop));
        return () => Promise.reject(new Error(`unexpected I/O: ${String(prop)}`));
      },
    },
  ) as Redis;
  return { redis, touched };
}

/** Redis Cluster's hash tag rule, written independently of the guard's. */
function slotText(key: string): string {
  const m = /^[^{]*\{([^}]+)\}/.exec(key);
  return m ? m[1]! : key;
}

describe('highestFenceKey', () => {
  it('appends a suffix to a key that has a hash tag, keeping its slot', () => {
    const k = highestFenceKey('invoice:{42}:total');
    expect(k).toBe('invoice:{42}:total:highest-fence');
    expect(slotText(k)).toBe('42');
  });

  it('wraps an untagged key as the tag, so the mark hashes like the whole key', () => {
    for (const key of ['invoice:42', 'a{b', 'weird{']) {
      const k = highestFenceKey(key);
      expect(slotText(k)).toBe(key);
      expect(k).not.toBe(key);
    }
  });

  it('treats an empty {} as no tag, as Redis Cluster does', () => {
    expect(() => highestFenceKey('a{}b')).toThrow(InvalidArgumentError);
  });

  it('refuses an untagged key containing "}", which no derived key can share a slot with', () => {
    expect(() => highestFenceKey('a}b')).toThrow(/fenceKey/);
  });

  it('refuses an empty or non-string key', () => {
    expect(() => highestFenceKey('')).toThrow(InvalidArgumentError);
    expect(() => highestFenceKey(42 as unknown as string)).toThrow(InvalidArgumentError);
  });
});

describe('guard input validation', () => {
  const badTokens: unknown[] = [
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 53,
    '5',
    10n,
    null,
    undefined,
  ];

  it.each(badTokens.map((t) => [String(t), t]))(
    'rejects token %s before any I/O',
    async (_name, token) => {
      const { redis, touched } = untouchable();
      const err = await fencedSet(redis, 'k', 'v', token as number).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).code).toBe('ERR_LOCK_INVALID_ARGUMENT');
      await expect(fencedDel(redis, 'k', token as number)).rejects.toThrow(/token/);
      await expect(fencedClaim(redis, 'k', token as number)).rejects.toThrow(/token/);
      await expect(fencedCall(redis, 'k', token as number, 'HSET', ['f', 'v'])).rejects.toThrow(
        /token/,
      );
      expect(touched).toEqual([]);
    },
  );

  it('takes lock.fence as it is typed and says that fencing is off when it is undefined', async () => {
    const { redis, touched } = untouchable();
    const fence: number | undefined = undefined;
    await expect(fencedSet(redis, 'k', 'v', fence)).rejects.toThrow(/fencing: false/);
    expect(touched).toEqual([]);
  });

  it('accepts 0 and the largest safe integer as tokens (validation only)', async () => {
    for (const token of [0, Number.MAX_SAFE_INTEGER]) {
      const { redis, touched } = untouchable();
      // Valid input reaches the client, which here refuses: that proves validation passed.
      await expect(fencedSet(redis, 'k', 'v', token)).rejects.toThrow(/unexpected I\/O/);
      expect(touched.length).toBeGreaterThan(0);
    }
  });

  it('rejects an empty or non-string key before any I/O', async () => {
    const { redis, touched } = untouchable();
    await expect(fencedSet(redis, '', 'v', 1)).rejects.toThrow(InvalidArgumentError);
    await expect(fencedDel(redis, undefined as unknown as string, 1)).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(highestFence(redis, '')).rejects.toThrow(InvalidArgumentError);
    expect(touched).toEqual([]);
  });

  it("rejects a fenceKey outside the guarded key's slot, or equal to it, before any I/O", async () => {
    const { redis, touched } = untouchable();
    await expect(fencedSet(redis, '{a}:x', 'v', 1, { fenceKey: '{b}:hw' })).rejects.toThrow(
      /hash slot/,
    );
    await expect(fencedSet(redis, 'plain', 'v', 1, { fenceKey: 'plain:hw' })).rejects.toThrow(
      /hash slot/,
    );
    await expect(fencedSet(redis, '{a}:x', 'v', 1, { fenceKey: '{a}:x' })).rejects.toThrow(
      /differ/,
    );
    await expect(fencedSet(redis, '{a}:x', 'v', 1, { fenceKey: '' })).rejects.toThrow(
      InvalidArgumentError,
    );
    expect(touched).toEqual([]);
  });

  it('rejects bad values, ttls, commands and args before any I/O', async () => {
    const { redis, touched } = untouchable();
    await expect(fencedSet(redis, 'k', undefined as unknown as string, 1)).rejects.toThrow(/value/);
    await expect(fencedSet(redis, 'k', { a: 1 } as unknown as string, 1)).rejects.toThrow(/value/);
    for (const ttl of [0, -5, 1.5, Number.NaN]) {
      await expect(fencedSet(redis, 'k', 'v', 1, { ttl })).rejects.toThrow(/ttl/);
    }
    await expect(fencedCall(redis, 'k', 1, '')).rejects.toThrow(/command/);
    await expect(fencedCall(redis, 'k', 1, 'SET x; DEL')).rejects.toThrow(/command/);
    await expect(fencedCall(redis, 'k', 1, 'SET', [null as unknown as string])).rejects.toThrow(
      /args\[0\]/,
    );
    await expect(
      fencedCall(redis, 'k', 1, 'SET', 'v' as unknown as readonly string[]),
    ).rejects.toThrow(/array/);
    expect(touched).toEqual([]);
  });
});
