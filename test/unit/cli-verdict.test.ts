import { describe, expect, it } from 'vitest';
import { checkHistory, type Hold } from '../../src/cli/demo-history.js';
import { parseInfo } from '../../src/cli/doctor.js';
import { formatStatus, statusReport } from '../../src/cli/status.js';
import { judge, type NodeView } from '../../src/cli/verdict.js';

const held = (node: string, value: string, pttl: number, fence = 7): NodeView => ({
  node,
  value,
  pttl,
  fence,
});
const free = (node: string, fence: number | null = 7): NodeView => ({
  node,
  value: null,
  pttl: null,
  fence,
});
const down = (node: string): NodeView => ({
  node,
  value: null,
  pttl: null,
  fence: null,
  error: new Error('connect ECONNREFUSED'),
});

describe('status verdict', () => {
  it('calls a lock held when one value is on a quorum, expiring when the quorum-th key does', () => {
    const v = judge(
      [held('a', 'x', 900), held('b', 'x', 500), held('c', 'x', 700), free('d'), down('e')],
      3,
    );
    expect(v).toMatchObject({ state: 'held', holder: 'x', holdingNodes: 3, expiresInMs: 500 });
  });

  it('calls a lock free when a quorum has no key, whatever leftovers a minority has', () => {
    const v = judge([held('a', 'old', 300), free('b', 9), free('c', 12)], 2);
    expect(v).toMatchObject({ state: 'free', reachable: 3, maxFence: 12 });
  });

  it('calls a split blocked, free once enough keys have expired', () => {
    const v = judge(
      [held('a', 'x', 800), held('b', 'y', 200), free('c'), held('d', 'x', 50), free('e')],
      3,
    );
    expect(v.state).toBe('blocked');
    // Two nodes are free; the shortest of the others (50 ms) frees the third.
    expect(v.expiresInMs).toBe(50);
  });

  it('says no quorum when fewer than a quorum of nodes answer', () => {
    const v = judge([held('a', 'x', 800), down('b'), down('c')], 2);
    expect(v).toMatchObject({ state: 'no-quorum', reachable: 1 });
  });

  it('prints each node and the verdict, marking unreachable nodes', () => {
    const report = statusReport(
      'job',
      [held('a:1', 'x'.repeat(24), 900), held('b:2', 'x'.repeat(24), 800), down('c:3')],
      2,
    );
    const text = formatStatus(report);
    expect(text).toMatch(/c:3\s+NO\s+\?/);
    expect(text).toMatch(/ECONNREFUSED/);
    expect(text).toMatch(/verdict: HELD by x{12}… on 2 of 2 reachable nodes, expires in 800 ms/);
    expect(report.nodes[2]).toMatchObject({ reachable: false, error: 'connect ECONNREFUSED' });
  });
});

describe('demo history checker', () => {
  const hold = (
    holder: string,
    fence: number,
    acquiredAt: number,
    validUntil: number,
    endedAt?: number,
  ): Hold => ({
    holder,
    fence,
    acquiredAt,
    validUntil,
    endedAt,
  });

  it('finds no overlap in back-to-back holds', () => {
    const v = checkHistory([
      hold('a', 1, 0, 1000, 400),
      hold('b', 2, 400, 1400, 900),
      hold('c', 3, 950, 2000),
    ]);
    expect(v.overlaps).toEqual([]);
    expect(v.fenceRegressions).toEqual([]);
  });

  it('finds two holders whose windows overlap, and for how long', () => {
    const v = checkHistory([hold('a', 1, 0, 1000, 600), hold('b', 2, 450, 1400, 900)]);
    expect(v.overlaps).toHaveLength(1);
    expect(v.overlaps[0]!.ms).toBe(150);
  });

  it('ends a frozen holder at its last validity, not when it woke up', () => {
    const frozen = hold('a', 1, 0, 1000, 5000);
    expect(checkHistory([frozen, hold('b', 2, 1001, 3000, 2000)]).overlaps).toEqual([]);
    expect(checkHistory([frozen, hold('b', 2, 999, 3000, 2000)]).overlaps).toHaveLength(1);
  });

  it('finds tokens that do not increase with acquisition order', () => {
    const v = checkHistory([hold('b', 5, 500, 900, 800), hold('a', 5, 0, 400, 300)]);
    expect(v.fenceRegressions).toHaveLength(1);
  });
});

describe('parseInfo', () => {
  it('reads fields across sections and skips headers', () => {
    const info = parseInfo(
      '# Server\r\nredis_version:7.0.15\r\nrun_id:abc\r\n\r\n# Replication\r\nrole:master\r\n',
    );
    expect(info.get('redis_version')).toBe('7.0.15');
    expect(info.get('role')).toBe('master');
    expect(info.has('# Server')).toBe(false);
  });
});
