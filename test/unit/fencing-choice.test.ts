import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseTokens } from '../../src/redis/fencing.js';

/** Counters of one granting node: one per resource. */
const counter = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
/** Replies of 1..5 granting nodes for 1..4 resources. */
const replies = fc.integer({ min: 1, max: 4 }).chain((resources) =>
  fc.array(fc.array(counter, { minLength: resources, maxLength: resources }), {
    minLength: 1,
    maxLength: 5,
  }),
);

describe('chooseTokens', () => {
  it('the token of each resource is the largest counter any granting node returned', () => {
    fc.assert(
      fc.property(replies, (rs) => {
        const { tokens } = chooseTokens(rs);
        expect(tokens).toHaveLength(rs[0]!.length);
        tokens.forEach((t, i) => {
          expect(t).toBe(Math.max(...rs.map((r) => r[i]!)));
        });
      }),
    );
  });

  it('phase 2 runs exactly when the granting nodes returned different counters', () => {
    fc.assert(
      fc.property(replies, (rs) => {
        const differ = rs.some((r) => r.some((f, i) => f !== rs[0]![i]));
        expect(chooseTokens(rs).needsSync).toBe(differ);
      }),
    );
  });

  it('needs no phase 2 when every node agrees, however many there are', () => {
    fc.assert(
      fc.property(
        fc.array(counter, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 5 }),
        (fences, n) => {
          const choice = chooseTokens(Array.from({ length: n }, () => [...fences]));
          expect(choice).toEqual({ tokens: fences, needsSync: false });
        },
      ),
    );
  });

  it('needs phase 2 when only a later node disagrees, even with a smaller counter', () => {
    expect(chooseTokens([[7], [7], [6]])).toEqual({ tokens: [7], needsSync: true });
    expect(
      chooseTokens([
        [5, 9],
        [5, 9],
        [5, 10],
      ]),
    ).toEqual({ tokens: [5, 10], needsSync: true });
    expect(chooseTokens([[3], [9], [3]])).toEqual({ tokens: [9], needsSync: true });
  });

  it('takes the maximum per resource, not the reply with the largest first counter', () => {
    expect(
      chooseTokens([
        [10, 1],
        [2, 20],
      ]),
    ).toEqual({ tokens: [10, 20], needsSync: true });
  });

  it('accepts counters seeded from server time in microseconds', () => {
    const seeded = 1_764_000_000_000_000;
    expect(chooseTokens([[seeded], [seeded + 3]])).toEqual({
      tokens: [seeded + 3],
      needsSync: true,
    });
  });

  it('refuses a token that is not a safe non-negative integer', () => {
    expect(() => chooseTokens([[2 ** 53]])).toThrow(RangeError);
    expect(() => chooseTokens([[-1]])).toThrow(RangeError);
    expect(() => chooseTokens([[1.5]])).toThrow(RangeError);
  });

  it('has no tokens when no node granted the lock', () => {
    expect(chooseTokens([])).toEqual({ tokens: [], needsSync: false });
  });
});
