/**
 * doctor's ensemble checks on a zk:// URL, from the views of the listed
 * servers (the real-server path is test/integration/zookeeper-cli.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { ensembleChecks, type ServerView } from '../../src/cli/doctor-zookeeper.js';

const view = (node: string, mode?: string, members?: number): ServerView => ({
  node,
  checks: [],
  ...(mode ? { mode } : {}),
  ...(members ? { members } : {}),
});
const quorumOf = (views: ServerView[]) =>
  ensembleChecks(views, 3, 2).find((c) => c.name === 'quorum');

describe('doctor: the quorum of a ZooKeeper ensemble', () => {
  it('passes when a majority of the ensemble serves', () => {
    const views = [view('a', 'leader', 3), view('b', 'follower', 3), view('c')];
    expect(quorumOf(views)?.status).toBe('pass');
  });

  it('fails when more listed servers are down than the ensemble can lose, even if a survivor still serves', () => {
    // Right after two of three servers die, the third keeps its role until its sync timeout.
    const check = quorumOf([view('a', 'follower', 3), view('b'), view('c')]);
    expect(check?.status).toBe('fail');
    expect(check?.detail).toMatch(/2 of 3 listed servers do not serve/);
  });

  it('fails when no listed server serves', () => {
    expect(quorumOf([view('a'), view('b'), view('c')])?.status).toBe('fail');
  });

  it('passes on a URL that lists only some of the servers, all serving', () => {
    expect(quorumOf([view('a', 'follower', 3)])?.status).toBe('pass');
  });
});
