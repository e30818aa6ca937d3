import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  fencedCall,
  fencedClaim,
  fencedDel,
  fencedSet,
  highestFence,
  highestFenceKey,
} from '../../src/redis/guard.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
let redis: Redis;

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 1 });
  redis = ensemble.nodes[0]!.client();
});

afterAll(async () => {
  redis?.disconnect();
  await ensemble?.stop();
});

beforeEach(async () => {
  await redis.flushall();
});

describe('fencedSet', () => {
  it('writes with the first token and records it as the highest', async () => {
    expect(await fencedSet(redis, 'doc:1', 'a', 10)).toEqual({ accepted: true, highest: 10 });
    expect(await redis.get('doc:1')).toBe('a');
    expect(await highestFence(redis, 'doc:1')).toBe(10);
    expect(await redis.get(highestFenceKey('doc:1'))).toBe('10');
  });

  it('accepts the same token again: one holder writes many times', async () => {
    await fencedSet(redis, 'doc:1', 'a', 10);
    expect(await fencedSet(redis, 'doc:1', 'b', 10)).toEqual({ accepted: true, highest: 10 });
    expect(await redis.get('doc:1')).toBe('b');
  });

  it('rejects a lower token, leaving the value and the highest untouched', async () => {
    await fencedSet(redis, 'doc:1', 'new', 20);
    expect(await fencedSet(redis, 'doc:1', 'stale', 19)).toEqual({ accepted: false, highest: 20 });
    expect(await redis.get('doc:1')).toBe('new');
    expect(await highestFence(redis, 'doc:1')).toBe(20);
  });

  it('keeps tokens exact up to 2^53 - 1 (microsecond-seeded fences are ~1.7e15)', async () => {
    const big = Number.MAX_SAFE_INTEGER - 1;
    expect(await fencedSet(redis, 'doc:big', 'x', big)).toEqual({ accepted: true, highest: big });
    expect(await fencedSet(redis, 'doc:big', 'y', big - 1)).toEqual({
      accepted: false,
      highest: big,
    });
    expect(await fencedSet(redis, 'doc:big', 'z', big + 1)).toEqual({
      accepted: true,
      highest: big + 1,
    });
    expect(await highestFence(redis, 'doc:big')).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('sets a ttl on the value but never on the highest token', async () => {
    await fencedSet(redis, 'doc:ttl', 'v', 1, { ttl: 60_000 });
    const pttl = await redis.pttl('doc:ttl');
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(await redis.pttl(highestFenceKey('doc:ttl'))).toBe(-1);
  });

  it('stores Buffer and number values as given', async () => {
    await fencedSet(redis, 'doc:buf', Buffer.from([0, 255, 1]), 1);
    expect(await redis.getBuffer('doc:buf')).toEqual(Buffer.from([0, 255, 1]));
    await fencedSet(redis, 'doc:num', 42, 1);
    expect(await redis.get('doc:num')).toBe('42');
  });

  it('keeps guarding after the script cache is flushed', async () => {
    await fencedSet(redis, 'doc:1', 'a', 5);
    await redis.script('FLUSH');
    expect(await fencedSet(redis, 'doc:1', 'b', 4)).toEqual({ accepted: false, highest: 5 });
    expect(await fencedSet(redis, 'doc:1', 'c', 6)).toEqual({ accepted: true, highest: 6 });
  });
});

describe('fencedDel', () => {
  it('deletes with a current token and keeps the highest, so older holders stay fenced off', async () => {
    await fencedSet(redis, 'doc:1', 'a', 7);
    expect(await fencedDel(redis, 'doc:1', 8)).toEqual({ accepted: true, highest: 8 });
    expect(await redis.exists('doc:1')).toBe(0);
    expect(await fencedSet(redis, 'doc:1', 'stale', 7)).toEqual({ accepted: false, highest: 8 });
    expect(await redis.exists('doc:1')).toBe(0);
  });

  it('refuses a delete with a stale token', async () => {
    await fencedSet(redis, 'doc:1', 'a', 7);
    expect(await fencedDel(redis, 'doc:1', 6)).toEqual({ accepted: false, highest: 7 });
    expect(await redis.get('doc:1')).toBe('a');
  });
});

describe('fencedCall', () => {
  it('runs any single-key command and returns its reply', async () => {
    const r = await fencedCall(redis, '{order:9}:lines', 3, 'HSET', ['sku', 'A1', 'qty', 2]);
    expect(r).toEqual({ accepted: true, highest: 3, reply: 2 });
    expect(await redis.hgetall('{order:9}:lines')).toEqual({ sku: 'A1', qty: '2' });
    const stale = await fencedCall(redis, '{order:9}:lines', 2, 'HSET', ['qty', 99]);
    expect(stale).toEqual({ accepted: false, highest: 3, reply: undefined });
    expect(await redis.hget('{order:9}:lines', 'qty')).toBe('2');
  });

  it('shares one mark between keys of one resource through fenceKey', async () => {
    const opts = { fenceKey: '{order:9}:fence' };
    await fencedCall(redis, '{order:9}:total', 12, 'INCRBY', [100], opts);
    // A holder with token 11 is older than the one that wrote the total: refused on another key too.
    const r = await fencedSet(redis, '{order:9}:status', 'paid', 11, opts);
    expect(r).toEqual({ accepted: false, highest: 12 });
    expect(await redis.exists('{order:9}:status')).toBe(0);
    expect(await highestFence(redis, '{order:9}:total', opts)).toBe(12);
    expect(await highestFence(redis, '{order:9}:status', opts)).toBe(12);
  });

  it('does not move the highest when the command itself fails', async () => {
    await redis.set('doc:str', 'text');
    await fencedSet(redis, 'doc:str', 'text', 1);
    await expect(fencedCall(redis, 'doc:str', 5, 'HSET', ['f', 'v'])).rejects.toThrow(/WRONGTYPE/);
    expect(await highestFence(redis, 'doc:str')).toBe(1);
  });

  it('reports a corrupted mark instead of guessing', async () => {
    await redis.set(highestFenceKey('doc:bad'), 'not-a-number');
    await expect(fencedSet(redis, 'doc:bad', 'v', 1)).rejects.toThrow(/does not hold a number/);
    expect(await redis.exists('doc:bad')).toBe(0);
  });
});

describe('fencedClaim', () => {
  it('records the token without writing, so a stale holder cannot write between read and write', async () => {
    await fencedSet(redis, 'counter', '10', 4); // the previous holder
    expect(await fencedClaim(redis, 'counter', 5)).toEqual({ accepted: true, highest: 5 });
    const read = Number(await redis.get('counter'));
    // The previous holder wakes up between the new holder's read and write: refused.
    expect((await fencedSet(redis, 'counter', '999', 4)).accepted).toBe(false);
    expect(await fencedSet(redis, 'counter', String(read + 1), 5)).toEqual({
      accepted: true,
      highest: 5,
    });
    expect(await redis.get('counter')).toBe('11');
  });

  it('refuses a stale claim and creates no guarded key', async () => {
    expect(await fencedClaim(redis, 'fresh', 9)).toEqual({ accepted: true, highest: 9 });
    expect(await redis.exists('fresh')).toBe(0);
    expect(await fencedClaim(redis, 'fresh', 8)).toEqual({ accepted: false, highest: 9 });
    expect(await highestFence(redis, 'fresh')).toBe(9);
  });
});

describe('highestFence', () => {
  it('is null before any fenced write', async () => {
    expect(await highestFence(redis, 'never-written')).toBeNull();
  });
});

describe('guard under concurrency', () => {
  it('accepts exactly the writes whose token is at least every earlier accepted token', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 40 }),
        async (tokens) => {
          await redis.del('race', highestFenceKey('race'));
          // Sent all at once; Redis runs the scripts one after another in arrival order.
          const results = await Promise.all(
            tokens.map((t, i) => fencedSet(redis, 'race', `${t}:${i}`, t)),
          );
          let high = -1;
          let last = '';
          tokens.forEach((t, i) => {
            const expected = t >= high;
            expect(results[i]!.accepted).toBe(expected);
            if (expected) {
              high = t;
              last = `${t}:${i}`;
            }
            expect(results[i]!.highest).toBe(high);
          });
          expect(await redis.get('race')).toBe(last);
          expect(await highestFence(redis, 'race')).toBe(high);
        },
      ),
      { numRuns: 60 },
    );
  });
});
