/**
 * permits.lua on redis-server and its re-implementation in the simulation
 * (test/sim/permit-server.ts) take the same decisions: random sequences of
 * acquires (semaphore slots, readers, writers; waiters and callers that do not
 * wait; turns, leftovers, preferred slots), releases (holders, waiters
 * leaving, turns kept) and extends, run on both, give the same replies (fence
 * counters compared by how far each moved from its first value), the same
 * holders and turns, the same queue and the same notices. Times are long
 * enough that nothing expires during a sequence.
 */
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { permitKeys } from '../../src/redis/permits.js';
import { scripts } from '../../src/redis/scripts/index.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';
import { Scheduler } from '../sim/clock.js';
import { PermitServer } from '../sim/permit-server.js';

let ensemble: Ensemble;
let redis: Redis;
let subscriber: Redis;

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 1 });
  redis = ensemble.nodes[0]!.client();
  subscriber = ensemble.nodes[0]!.client();
});
afterAll(async () => {
  redis?.disconnect();
  subscriber?.disconnect();
  await ensemble?.stop();
});

const LONG = '600000';
const CHANNEL = 'diff:turn:';
const members = ['p0.1s', 'p0.2s', 'p1.3s', 'p2.4s', 'p0.5r', 'p1.6r', 'p2.7w', 'p1.8w'];

type Step =
  | { op: 'acquire'; m: number; waits: boolean; ticket: number; hint: string; round: number }
  | {
      op: 'release';
      m: number;
      round: number;
      turn: boolean;
      leave: boolean;
      keep: boolean;
      requeue: number;
    }
  | { op: 'extend'; m: number; round: number; field: string };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    op: fc.constant('acquire' as const),
    m: fc.integer({ min: 0, max: 7 }),
    waits: fc.boolean(),
    ticket: fc.integer({ min: 0, max: 4 }),
    hint: fc.constantFrom('', '0', '1'),
    round: fc.integer({ min: 0, max: 1 }),
  }),
  fc.record({
    op: fc.constant('release' as const),
    m: fc.integer({ min: 0, max: 7 }),
    round: fc.integer({ min: 0, max: 1 }),
    turn: fc.boolean(),
    leave: fc.boolean(),
    keep: fc.boolean(),
    requeue: fc.constantFrom(0, 0, 2, 6),
  }),
  fc.record({
    op: fc.constant('extend' as const),
    m: fc.integer({ min: 0, max: 7 }),
    round: fc.integer({ min: 0, max: 1 }),
    field: fc.constantFrom('0', '1', 'w'),
  }),
);

/** ARGV of permits.lua for `s` on a name whose kind follows the member's last letter. */
function argvOf(s: Step): string[] {
  const member = members[s.m]!;
  const kind = member.slice(-1);
  const value = `V${member}.${s.round}`;
  const field = kind === 'w' ? 'w' : kind === 'r' ? `r${member}` : '';
  const head = (op: string, v: string, f: string, n: string) => [
    op,
    kind,
    '2',
    v,
    f,
    member,
    n,
    LONG,
    CHANNEL,
  ];
  if (s.op === 'acquire') {
    const seed = String(Date.now() * 1000 + 500_000);
    return [
      ...head('acquire', value, field, LONG),
      `V${member}`,
      s.waits ? '1' : '0',
      String(s.ticket),
      LONG,
      '1',
      seed,
      kind === 's' ? s.hint : '',
      LONG,
    ];
  }
  if (s.op === 'extend') return head('extend', value, kind === 's' ? s.field : field, LONG);
  return [
    ...head('release', s.turn ? `~turn~${member}` : value, kind === 's' ? '' : field, '0'),
    s.leave ? member : '',
    s.keep ? member : '',
    String(s.requeue),
    LONG,
  ];
}

/**
 * Fence counters as how far each moved from the first one seen on its side;
 * the remaining ms of a refusal only as present or not (the clocks differ).
 */
function normalize(reply: unknown, base: { fence?: number }): unknown {
  if (!Array.isArray(reply)) return reply;
  if (reply[0] === 0)
    return [
      0,
      Number(reply[1]) >= 0 ? 'ttl' : Number(reply[1]),
      Number(reply[2]),
      Number(reply[3]),
    ];
  const fence = Number(reply[2]);
  base.fence ??= fence;
  return [1, String(reply[1]), fence - base.fence];
}

/** Runs `steps` on redis-server and on a PermitServer, comparing after every step. */
async function compare(steps: readonly Step[], name: string): Promise<void> {
  const notices: { real: string[]; sim: string[] } = { real: [], sim: [] };
  const onMessage = (_p: string, _c: string, m: string) => notices.real.push(m);
  await subscriber.psubscribe(`${CHANNEL}*`);
  subscriber.on('pmessage', onMessage);
  const server = new PermitServer(new Scheduler(), 'sim', Date.now(), 1);
  for (const p of ['p0', 'p1', 'p2'])
    server.subscribe(`${CHANNEL}${p}`, (m) => notices.sim.push(m));
  // One fence counter per name: each moves from its own first value.
  const bases = { semaphore: { real: {}, sim: {} }, rwlock: { real: {}, sim: {} } };
  try {
    for (const s of steps) {
      const family = members[s.m]!.endsWith('s') ? 'semaphore' : 'rwlock';
      const keys = permitKeys('diff:', family, name);
      const argv = argvOf(s);
      const real = await redis
        .evalsha(scripts.permits.sha, keys.length, ...keys, ...argv)
        .catch(() => redis.eval(scripts.permits.lua, keys.length, ...keys, ...argv));
      const sim = server.run(keys, argv);
      const base = bases[family];
      expect(normalize(sim, base.sim), JSON.stringify(s)).toEqual(normalize(real, base.real));
      expect(Object.fromEntries(server.hash(keys[0]!) ?? [])).toEqual(
        await redis.hgetall(keys[0]!),
      );
      const queue = await redis.zrange(keys[2]!, '0', '-1', 'WITHSCORES');
      expect(server.sorted(keys[2]!).flat().map(String)).toEqual(queue);
      const expiring = await redis.zrange(keys[1]!, '0', '-1');
      expect(
        server
          .sorted(keys[1]!)
          .map(([f]) => f)
          .sort(),
      ).toEqual(expiring.sort());
    }
    await redis.ping();
    await subscriber.ping();
    expect(notices.sim).toEqual(notices.real);
  } finally {
    subscriber.off('pmessage', onMessage);
    await subscriber.punsubscribe();
  }
}

const acquire = (m: number, waits: boolean, hint = ''): Step => ({
  op: 'acquire',
  m,
  waits,
  ticket: 0,
  hint,
  round: 0,
});
const release = (m: number): Step => ({
  op: 'release',
  m,
  round: 0,
  turn: false,
  leave: false,
  keep: false,
  requeue: 0,
});

describe('permits.lua and the simulation agree', () => {
  it('give the same replies, holders, queue and notices for random sequences', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), (steps) =>
        compare(steps, `random${run++}`),
      ),
      { numRuns: 60 },
    );
  });

  it('hand turns on in order and swap crossed turns alike', async () => {
    // Two holders, two waiters; each release hands a turn on; the first waiter
    // asks for the other's slot: they swap. Then a writer queues behind readers.
    await compare(
      [
        acquire(0, false),
        acquire(1, false),
        acquire(2, true),
        acquire(3, true),
        release(0),
        release(1),
        acquire(2, true, '1'),
        acquire(3, true),
        acquire(4, false),
        acquire(6, true),
        acquire(5, true),
        release(4),
        acquire(6, true),
        acquire(5, true),
      ],
      'scripted',
    );
  });
});
