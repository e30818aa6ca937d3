import { describe, expect, it } from 'vitest';
import {
  nodeSettings,
  parseDuration,
  parseWait,
  redactUrl,
  resolveNodes,
  UsageError,
} from '../../src/cli/args.js';
import { ExitCode, exitCodeFor } from '../../src/cli/exit.js';
import { parseRunArgs } from '../../src/cli/run.js';
import {
  AcquireTimeoutError,
  InvalidArgumentError,
  LockLostError,
  LockTakenError,
  QuorumError,
} from '../../src/errors.js';

const NODES = {
  QUORUMLOCK_NODES: 'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383',
};

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['1.1s', 1100],
    ['250', 250],
    ['0', 0],
    [' 5s ', 5000],
  ])('reads %j as %i ms', (text, ms) => {
    expect(parseDuration(text, '--ttl')).toBe(ms);
  });

  it.each([
    '',
    'abc',
    '-5s',
    '5x',
    '5 s',
    '1e3',
    'Infinity',
    '0.5ms',
    '1.0001s',
    '30d',
    '9999999999',
  ])('rejects %j with a usage error naming the flag', (text) => {
    expect(() => parseDuration(text, '--grace')).toThrow(UsageError);
    expect(() => parseDuration(text, '--grace')).toThrow(/--grace/);
  });

  it('reads --wait forever as no limit', () => {
    expect(parseWait('forever')).toBe(Number.POSITIVE_INFINITY);
    expect(parseWait('2s')).toBe(2000);
    expect(() => parseWait('always')).toThrow(/--wait/);
  });
});

describe('resolveNodes', () => {
  it('prefers --nodes over QUORUMLOCK_NODES', () => {
    expect(resolveNodes('redis://a:1', NODES)).toEqual(['redis://a:1']);
  });

  it('falls back to QUORUMLOCK_NODES, trimming spaces and empty entries', () => {
    expect(resolveNodes(undefined, { QUORUMLOCK_NODES: ' redis://a:1 , rediss://b:2,,' })).toEqual([
      'redis://a:1',
      'rediss://b:2',
    ]);
  });

  it('refuses a bare host:port, as the library does, and says what to write', () => {
    expect(() => resolveNodes('10.0.0.1:6379', {})).toThrow(UsageError);
    expect(() => resolveNodes('redis://a:1,localhost:6380', {})).toThrow(
      /"localhost:6380" has no scheme; write redis:\/\/localhost:6380/,
    );
    let message = '';
    try {
      resolveNodes('app:secret@db1:6379', {});
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/redis:\/\/app:\*\*\*@db1:6379/);
    expect(message).not.toContain('secret');
  });

  it('rejects a missing node list, naming both ways to give one', () => {
    expect(() => resolveNodes(undefined, {})).toThrow(/--nodes.*QUORUMLOCK_NODES/);
    expect(() => resolveNodes(' , ', {})).toThrow(UsageError);
  });

  it('rejects other schemes without echoing a password', () => {
    let message = '';
    try {
      resolveNodes('http://user:secret@a:1', {});
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/redis:\/\/ or rediss:\/\//);
    expect(message).not.toContain('secret');
  });

  it('redacts passwords for printing', () => {
    expect(redactUrl('rediss://app:s3cret@host:6380/0')).toBe('rediss://app:***@host:6380/0');
    expect(redactUrl('redis://host:6379')).toBe('redis://host:6379');
  });

  it('accepts a quorum above half the nodes only', () => {
    expect(nodeSettings({ quorum: '3' }, NODES).quorum).toBe(3);
    expect(() => nodeSettings({ quorum: '1' }, NODES)).toThrow(/more than half/);
    expect(() => nodeSettings({ quorum: '4' }, NODES)).toThrow(/at most 3/);
    expect(() => nodeSettings({ quorum: 'two' }, NODES)).toThrow(UsageError);
  });
});

describe('parseRunArgs', () => {
  it('takes the resource before -- and passes everything after it to the command untouched', () => {
    const plan = parseRunArgs(['--ttl', '10s', 'job', '--', 'ls', '-la', '--ttl', 'x'], NODES)!;
    expect(plan.resource).toBe('job');
    expect(plan.command).toBe('ls');
    expect(plan.args).toEqual(['-la', '--ttl', 'x']);
    expect(plan.ttl).toBe(10_000);
  });

  it('defaults to a 30 s ttl, no waiting and a 5 s grace capped at a quarter of the ttl', () => {
    const plan = parseRunArgs(['job', '--', 'true'], NODES)!;
    expect(plan).toMatchObject({ ttl: 30_000, wait: 0, grace: 5000, log: 'none' });
    expect(parseRunArgs(['--ttl', '2s', 'job', '--', 'true'], NODES)!.grace).toBe(500);
    expect(parseRunArgs(['--wait', 'forever', 'job', '--', 'true'], NODES)!.wait).toBe(
      Number.POSITIVE_INFINITY,
    );
  });

  it('accepts the command without -- when it has no options of its own', () => {
    const plan = parseRunArgs(['job', 'make', 'report'], NODES)!;
    expect(plan.command).toBe('make');
    expect(plan.args).toEqual(['report']);
  });

  it.each([
    [['--', 'true'], /missing <resource>/],
    [['job'], /missing <command>/],
    [['job', '--'], /missing <command>/],
    [['a', 'b', '--', 'true'], /one resource only/],
    [['--ttl', '0', 'job', '--', 'true'], /--ttl must be more than 0/],
    [['--ttl', '2s', '--grace', '1s', 'job', '--', 'true'], /at most a quarter/],
    [['--wait', 'soon', 'job', '--', 'true'], /--wait/],
    [['--log', 'xml', 'job', '--', 'true'], /--log/],
    [['--conflict-exit-code', '256', 'job', '--', 'true'], /--conflict-exit-code/],
    [['--conflict-exit-code', '-1', 'job', '--', 'true'], /--conflict-exit-code/],
    [['--conflict-exit-code', 'x', 'job', '--', 'true'], /--conflict-exit-code/],
    [['--bogus', 'job', '--', 'true'], /bogus/],
    [['job', 'ls', '-la'], /-l/],
  ])('rejects %j as a usage error', (argv, message) => {
    expect(() => parseRunArgs(argv, NODES)).toThrow(UsageError);
    expect(() => parseRunArgs(argv, NODES)).toThrow(message);
  });

  it('exits 75 when the lock is held by another, or the code given by --conflict-exit-code', () => {
    expect(parseRunArgs(['job', '--', 'true'], NODES)!.conflictExitCode).toBe(75);
    const plan = (code: string) =>
      parseRunArgs(['--conflict-exit-code', code, 'job', '--', 'true'], NODES)!;
    expect(plan('3').conflictExitCode).toBe(3);
    expect(plan('0').conflictExitCode).toBe(0);
    expect(plan('255').conflictExitCode).toBe(255);
  });

  it('needs nodes from the flag or the environment', () => {
    expect(() => parseRunArgs(['job', '--', 'true'], {})).toThrow(/QUORUMLOCK_NODES/);
  });

  it('returns null for --help, even without nodes', () => {
    expect(parseRunArgs(['--help'], {})).toBeNull();
  });
});

describe('exitCodeFor', () => {
  const outcomes = [{ node: 'a:1', status: 'error' as const, cause: new Error('down') }];

  it('maps every library error to its documented exit code', () => {
    expect(exitCodeFor(new UsageError('x'))).toBe(ExitCode.usage);
    expect(exitCodeFor(new InvalidArgumentError('x'))).toBe(64);
    expect(exitCodeFor(new QuorumError('acquire', 2, outcomes))).toBe(69);
    expect(exitCodeFor(new LockTakenError(['r'], 100, []))).toBe(75);
    expect(exitCodeFor(new AcquireTimeoutError(['r'], 100))).toBe(75);
    expect(exitCodeFor(new LockLostError(['r'], 'gone'))).toBe(76);
    expect(exitCodeFor(new Error('boom'))).toBe(1);
  });

  it('reports a wait that ran out because the nodes were down as no quorum', () => {
    const cause = new QuorumError('acquire', 2, outcomes);
    expect(exitCodeFor(new AcquireTimeoutError(['r'], 100, cause))).toBe(69);
  });
});
