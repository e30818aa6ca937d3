import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  MAX_TTL,
  resolveAcquire,
  resolveResources,
  resolveSettings,
  resolveTtl,
} from '../../src/options.js';

/** Asserts that `fn` throws an InvalidArgumentError whose message names `mentions`. */
function rejects(fn: () => unknown, mentions: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `expected an InvalidArgumentError mentioning ${mentions}`).toBeInstanceOf(
    InvalidArgumentError,
  );
  expect((thrown as InvalidArgumentError).code).toBe('ERR_LOCK_INVALID_ARGUMENT');
  expect((thrown as Error).message).toMatch(mentions);
}

const notANumber = ['1000', null, true, {}, [], () => 1, 10n];
const badDurations = [0, -1, -0.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_TTL + 1];

describe('resolveSettings', () => {
  it('fills in the documented defaults', () => {
    expect(resolveSettings(undefined, 5)).toEqual({
      ttl: 30_000,
      driftFactor: 0.01,
      driftMs: 2,
      nodeTimeout: undefined,
      quorum: 3,
      keyPrefix: 'quorumlock:',
      retry: { minDelay: 10, maxDelay: 250, factor: 2 },
      fencing: true,
      renew: false,
    });
    expect(resolveSettings({}, 4).quorum).toBe(3);
    expect(resolveSettings({}, 2).quorum).toBe(2);
    expect(resolveSettings({}, 1).quorum).toBe(1);
  });

  it('keeps valid values as given', () => {
    const s = resolveSettings(
      {
        ttl: 1234.5,
        driftFactor: 0,
        driftMs: 0,
        nodeTimeout: 7,
        quorum: 5,
        keyPrefix: '',
        retry: { minDelay: 0, maxDelay: 0, factor: 1 },
        fencing: false,
        renew: true,
      },
      5,
    );
    expect(s).toEqual({
      ttl: 1234.5,
      driftFactor: 0,
      driftMs: 0,
      nodeTimeout: 7,
      quorum: 5,
      keyPrefix: '',
      retry: { minDelay: 0, maxDelay: 0, factor: 1 },
      fencing: false,
      renew: true,
    });
  });

  it('rejects options that are not a plain object', () => {
    for (const bad of [null, 5, 'ttl', [], true]) rejects(() => resolveSettings(bad, 3), /options/);
  });

  it('rejects unknown options, naming them (a typo must not be ignored)', () => {
    rejects(() => resolveSettings({ tll: 1000 }, 3), /unknown option "tll"/);
    rejects(() => resolveSettings({ retryCount: 3 }, 3), /unknown option "retryCount"/);
    rejects(() => resolveSettings({ retry: { maxDelayMs: 5 } }, 3), /unknown option "maxDelayMs"/);
  });

  it('rejects a ttl that is not a positive, finite number of ms a timer can hold', () => {
    for (const bad of [...badDurations, ...notANumber]) {
      rejects(() => resolveSettings({ ttl: bad }, 3), /options\.ttl/);
    }
    expect(resolveSettings({ ttl: MAX_TTL }, 3).ttl).toBe(MAX_TTL);
  });

  it('rejects a quorum that is not a majority, exceeds N or is not an integer', () => {
    for (let n = 1; n <= 7; n++) {
      for (let q = -1; q <= Math.floor(n / 2); q++) {
        rejects(() => resolveSettings({ quorum: q }, n), /options\.quorum/);
      }
      rejects(() => resolveSettings({ quorum: n + 1 }, n), /options\.quorum/);
      for (let q = Math.floor(n / 2) + 1; q <= n; q++) {
        expect(resolveSettings({ quorum: q }, n).quorum).toBe(q);
      }
    }
    // 2 of 4 would let two holders each have "a quorum".
    rejects(() => resolveSettings({ quorum: 2 }, 4), /3\.\.4 for 4 nodes/);
    for (const bad of [2.5, Number.NaN, Number.POSITIVE_INFINITY, ...notANumber]) {
      rejects(() => resolveSettings({ quorum: bad }, 3), /options\.quorum/);
    }
  });

  it('rejects a driftFactor outside [0, 1)', () => {
    for (const bad of [-0.01, 1, 2, Number.NaN, Number.POSITIVE_INFINITY, ...notANumber]) {
      rejects(() => resolveSettings({ driftFactor: bad }, 3), /options\.driftFactor/);
    }
  });

  it('rejects a driftMs that is negative or not finite, but allows 0', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, ...notANumber]) {
      rejects(() => resolveSettings({ driftMs: bad }, 3), /options\.driftMs/);
    }
    expect(resolveSettings({ driftMs: 0 }, 3).driftMs).toBe(0);
  });

  it('rejects a nodeTimeout that is not a positive, finite number of ms', () => {
    for (const bad of [...badDurations, ...notANumber]) {
      rejects(() => resolveSettings({ nodeTimeout: bad }, 3), /options\.nodeTimeout/);
    }
  });

  it('rejects a keyPrefix that is not a string', () => {
    for (const bad of [1, null, {}, ['a'], true]) {
      rejects(() => resolveSettings({ keyPrefix: bad }, 3), /options\.keyPrefix/);
    }
  });

  it('rejects bad retry settings', () => {
    for (const bad of [null, 5, 'fast', []]) {
      rejects(() => resolveSettings({ retry: bad }, 3), /options\.retry/);
    }
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '10']) {
      rejects(() => resolveSettings({ retry: { minDelay: bad } }, 3), /retry\.minDelay/);
      rejects(() => resolveSettings({ retry: { maxDelay: bad } }, 3), /retry\.maxDelay/);
    }
    for (const bad of [0.5, 0, -2, Number.NaN, Number.POSITIVE_INFINITY, '2']) {
      rejects(() => resolveSettings({ retry: { factor: bad } }, 3), /retry\.factor/);
    }
    rejects(
      () => resolveSettings({ retry: { minDelay: 100, maxDelay: 50 } }, 3),
      /maxDelay \(50\) must be at least .*minDelay \(100\)/,
    );
  });

  it('raises the default maxDelay to a larger minDelay instead of rejecting it', () => {
    expect(resolveSettings({ retry: { minDelay: 1000 } }, 3).retry).toEqual({
      minDelay: 1000,
      maxDelay: 1000,
      factor: 2,
    });
  });

  it('rejects fencing and renew that are not booleans', () => {
    for (const bad of ['true', 1, 0, null, {}]) {
      rejects(() => resolveSettings({ fencing: bad }, 3), /options\.fencing/);
      rejects(() => resolveSettings({ renew: bad }, 3), /options\.renew/);
    }
  });

  it('says in the message what the bad value was', () => {
    rejects(() => resolveSettings({ ttl: -5 }, 3), /got -5/);
    rejects(() => resolveSettings({ ttl: '100' }, 3), /got "100"/);
    rejects(() => resolveSettings({ quorum: 1 }, 3), /got 1$/);
  });
});

describe('resolveResources', () => {
  it('accepts one name or a list of distinct names, keeping their order', () => {
    expect(resolveResources('a')).toEqual(['a']);
    expect(resolveResources(['b', 'a', 'c'])).toEqual(['b', 'a', 'c']);
    expect(resolveResources(['{x}', 'ü', ' '])).toEqual(['{x}', 'ü', ' ']);
  });

  it('returns a copy: changing the caller array later does not change the lock', () => {
    const input = ['a', 'b'];
    const out = resolveResources(input);
    input.push('c');
    expect(out).toEqual(['a', 'b']);
  });

  it('rejects empty names, empty lists, duplicates and non-strings', () => {
    for (const bad of ['', [], [''], ['a', ''], undefined, null, 5, {}, new Set(['a'])]) {
      rejects(() => resolveResources(bad), /resource/);
    }
    for (const bad of [[1], ['a', null], ['a', ['b']], [{}]]) {
      rejects(() => resolveResources(bad), /every resource must be a non-empty string/);
    }
    rejects(() => resolveResources(['a', 'b', 'a']), /"a" is listed twice/);
  });
});

describe('resolveAcquire', () => {
  const settings = resolveSettings({ ttl: 5000, renew: false }, 3);

  it('defaults ttl and renew to the instance settings and wait to the caller default', () => {
    const a = resolveAcquire('r', undefined, settings, 0);
    expect(a).toMatchObject({ resources: ['r'], ttl: 5000, wait: 0, renew: false });
    expect(a.signal).toBeUndefined();
    expect(resolveAcquire('r', {}, settings, Number.POSITIVE_INFINITY).wait).toBe(
      Number.POSITIVE_INFINITY,
    );
  });

  it('accepts wait 0 and Infinity, and an AbortSignal', () => {
    const signal = new AbortController().signal;
    expect(resolveAcquire('r', { wait: 0 }, settings, 5).wait).toBe(0);
    expect(resolveAcquire('r', { wait: Number.POSITIVE_INFINITY }, settings, 5).wait).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(resolveAcquire('r', { signal }, settings, 5).signal).toBe(signal);
  });

  it('rejects bad ttl, wait, signal, renew and onLost, and unknown options', () => {
    for (const bad of [...badDurations, ...notANumber]) {
      rejects(() => resolveAcquire('r', { ttl: bad }, settings, 0), /ttl/);
    }
    for (const bad of [-1, Number.NaN, Number.NEGATIVE_INFINITY, ...notANumber]) {
      rejects(() => resolveAcquire('r', { wait: bad }, settings, 0), /wait/);
    }
    for (const bad of [{}, 'abort', 1, null, new AbortController()]) {
      rejects(() => resolveAcquire('r', { signal: bad }, settings, 0), /signal/);
    }
    for (const bad of ['yes', 1, null]) {
      rejects(() => resolveAcquire('r', { renew: bad }, settings, 0), /renew/);
    }
    for (const bad of ['fn', 1, {}]) {
      rejects(() => resolveAcquire('r', { onLost: bad }, settings, 0), /onLost/);
    }
    rejects(() => resolveAcquire('r', { timeout: 10 }, settings, 0), /unknown option "timeout"/);
    for (const bad of [null, 5, 'wait', []]) {
      rejects(() => resolveAcquire('r', bad, settings, 0), /options/);
    }
  });

  it('rejects bad resources before looking at the options', () => {
    rejects(() => resolveAcquire('', { ttl: -1 }, settings, 0), /resource/);
  });
});

describe('resolveTtl', () => {
  it('falls back to the current ttl and rejects non-positive or non-finite values', () => {
    expect(resolveTtl(undefined, 700)).toBe(700);
    expect(resolveTtl(1, 700)).toBe(1);
    for (const bad of [...badDurations, ...notANumber]) rejects(() => resolveTtl(bad, 700), /ttl/);
  });
});
