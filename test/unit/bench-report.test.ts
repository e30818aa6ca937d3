import { describe, expect, it } from 'vitest';
import { physicalLimit } from '../../src/cli/bench-measure.js';
import { type BenchResult, markdown, summarize } from '../../src/cli/bench-report.js';

describe('summarize', () => {
  it('takes percentiles by nearest rank', () => {
    const samples = Array.from({ length: 1000 }, (_, i) => 1000 - i); // 1000 … 1, unsorted
    expect(summarize(samples)).toEqual({
      count: 1000,
      minMs: 1,
      p50Ms: 500,
      p90Ms: 900,
      p99Ms: 990,
      p999Ms: 999,
      maxMs: 1000,
      meanMs: 500.5,
    });
  });

  it('gives the only sample for every percentile of one', () => {
    expect(summarize([2.5])).toMatchObject({ count: 1, minMs: 2.5, p50Ms: 2.5, p999Ms: 2.5 });
  });

  it('gives zeros with count 0 for no samples', () => {
    expect(summarize([])).toMatchObject({ count: 0, p50Ms: 0, maxMs: 0 });
  });
});

describe('physicalLimit', () => {
  const node = (p50Ms: number) => ({ node: `n${p50Ms}`, ok: true, rtt: summarize([p50Ms]) });

  it('is the median RTT of the quorum-th fastest node', () => {
    const nodes = [node(9), node(1), node(30), node(4), node(2)];
    expect(physicalLimit(nodes, 3)).toBe(4);
    expect(physicalLimit(nodes, 5)).toBe(30);
  });

  it('ignores unreachable nodes and is null when fewer than a quorum answered', () => {
    const down = { node: 'down', ok: false, error: 'ECONNREFUSED' };
    expect(physicalLimit([node(1), down, node(3)], 2)).toBe(3);
    expect(physicalLimit([node(1), down, down], 2)).toBeNull();
  });
});

describe('markdown', () => {
  const s = summarize([1, 2, 3]);
  const result: BenchResult = {
    tool: 'quorumlock bench',
    schema: 1,
    version: '1.2.3',
    date: '2026-01-01T00:00:00.000Z',
    quick: true,
    backend: 'redis',
    nodes: ['a:1', 'b:2', 'c:3'],
    quorum: 2,
    settings: {
      samples: 3,
      durationMs: 1000,
      concurrency: 4,
      clients: 2,
      holdMs: 0,
      ttlMs: 10_000,
    },
    rtt: {
      nodes: [
        { node: 'a:1', ok: true, rtt: summarize([0.25]) },
        { node: 'b:2', ok: false, error: 'ECONNREFUSED' },
        { node: 'c:3', ok: true, rtt: summarize([0.5]) },
      ],
      physicalLimitMs: 0.5,
    },
    sequential: { acquire: s, release: s, errors: 0, errorCodes: {} },
    throughput: {
      concurrency: 4,
      durationMs: 1000,
      cycles: 10,
      cyclesPerSecond: 10,
      acquire: s,
      errors: 1,
      errorCodes: { ERR_LOCK_QUORUM: 1 },
    },
    contended: {
      clients: 2,
      holdMs: 0,
      durationMs: 1000,
      acquisitions: 4,
      acquisitionsPerSecond: 4,
      handoff: s,
      shares: [0.25, 0.75],
      errors: 0,
      errorCodes: {},
    },
  };

  it('prints a row per node, the physical limit and a row of percentiles per measure', () => {
    const text = markdown(result);
    expect(text).toContain('| a:1 | 0.250 | 0.250 |');
    expect(text).toContain('| b:2 | unreachable: ECONNREFUSED | |');
    expect(text).toContain('Physical limit: 0.500 ms, the median RTT of the 2nd fastest node');
    expect(text).toContain('| sequential acquire | 3 | 2.00 | 3.00 | 3.00 | 3.00 | 3.00 | 2.00 |');
    expect(text).toContain('| acquire+release cycles/s at concurrency 4 | 10 | 1 |');
    expect(text).toContain('| contended shares, lowest–highest | 25%–75% | |');
    expect(text).toContain('Errors by code: throughput ERR_LOCK_QUORUM ×1.');
  });

  it('says round trips are measured for Redis only when there are none', () => {
    const text = markdown({
      ...result,
      backend: 'postgres',
      rtt: { nodes: [], physicalLimitMs: null },
    });
    expect(text).not.toContain('### Nodes');
    expect(text).toContain('measured for Redis nodes only, not for postgres');
  });
});
