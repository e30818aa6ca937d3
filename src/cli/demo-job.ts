/**
 * The demo's "nightly job", run by `quorumlock run`: it works through the
 * night's items one by one, resuming where an earlier holder stopped, and
 * writes each item to the store through the fencing guard with its
 * QUORUMLOCK_FENCE token. A write with a stale token is refused by the store;
 * the job then stops. It reports every step as one JSON line on stdout.
 *
 * Usage: demo-job.js <night>, with QUORUMLOCK_FENCE from `quorumlock run` and
 * DEMO_STORE_URL, DEMO_HOST, DEMO_ITEMS, DEMO_STEP_MS from the demo.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { fencedCall, fencedClaim } from '../redis/guard.js';
import { FENCED_OUT, nightKey, STORE_FENCE_KEY } from './demo-store.js';

function report(event: string, fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ t: Date.now(), event, ...fields })}\n`);
}

async function job(): Promise<number> {
  const night = Number(process.argv[2]);
  const token = Number(process.env.QUORUMLOCK_FENCE);
  const items = Number(process.env.DEMO_ITEMS ?? 10);
  const stepMs = Number(process.env.DEMO_STEP_MS ?? 200);
  const host = process.env.DEMO_HOST ?? 'host';
  const store = new Redis(process.env.DEMO_STORE_URL ?? 'redis://127.0.0.1:6379', {
    maxRetriesPerRequest: 1,
  });
  const key = nightKey(night);
  const guard = { fenceKey: STORE_FENCE_KEY };
  try {
    // Claim first: from now on no older holder can write between our reads and writes.
    const claim = await fencedClaim(store, key, token, guard);
    if (!claim.accepted) {
      report('rejected', { night, item: null, token, highest: claim.highest });
      return FENCED_OUT;
    }
    for (let first = true; ; first = false) {
      const next = Number((await store.hget(key, 'next')) ?? 0);
      if (next >= items) {
        report('complete', { night, already: first });
        return 0;
      }
      await sleep(stepMs); // the work of one item
      const result = await fencedCall(
        store,
        key,
        token,
        'HSET',
        ['next', next + 1, `item:${next}`, `${host} ${token}`],
        guard,
      );
      if (!result.accepted) {
        report('rejected', { night, item: next, token, highest: result.highest });
        return FENCED_OUT;
      }
      report('item', { night, item: next, token });
    }
  } finally {
    store.disconnect();
  }
}

job().then(
  (code) => process.exit(code),
  (err: unknown) => {
    report('error', { message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
