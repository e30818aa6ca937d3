/**
 * A demo host campaigning to be the scheduler through leader election
 * (`redlock.leader`). While elected it writes a heartbeat to the fenced store
 * with its leadership token. It reports every event as one JSON line on stdout
 * (with validity deadlines, so the demo can check terms never overlap) and
 * resigns on SIGTERM.
 *
 * Environment: QUORUMLOCK_NODES, DEMO_STORE_URL, DEMO_HOST, DEMO_TTL_MS,
 * DEMO_TICK_MS, DEMO_NODE_TIMEOUT_MS, all set by the demo.
 */
import diagnostics from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { channels } from '../diagnostics.js';
import { fencedSet } from '../redis/guard.js';
import { Redlock } from '../redis/redlock.js';
import { SCHEDULER, SCHEDULER_HEARTBEAT } from './demo-store.js';

function report(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ t: Date.now(), event, ...fields })}\n`);
}

async function main(): Promise<void> {
  const host = process.env.DEMO_HOST ?? 'host';
  const ttl = Number(process.env.DEMO_TTL_MS ?? 2000);
  const tick = Number(process.env.DEMO_TICK_MS ?? 200);
  const redlock = new Redlock((process.env.QUORUMLOCK_NODES ?? '').split(','), {
    nodeTimeout: Number(process.env.DEMO_NODE_TIMEOUT_MS ?? 250),
  });
  const store = new Redis(process.env.DEMO_STORE_URL ?? 'redis://127.0.0.1:6379', {
    maxRetriesPerRequest: 1,
  });

  const leader = redlock.leader(
    SCHEDULER,
    {
      ttl,
      onElected: (lock) => {
        report('elected', {
          fence: lock.fence,
          validUntil: lock.validUntil,
          remaining: lock.remaining(),
        });
        // Renewals move the deadline; the demo needs the latest one to check terms.
        const onExtend = (message: unknown) => {
          const e = message as { resources: readonly string[]; ok: boolean };
          if (e.resources !== lock.resources || !e.ok) return;
          setImmediate(() => {
            if (lock.held) report('extended', { validUntil: lock.validUntil });
          });
        };
        diagnostics.subscribe(channels.extend, onExtend);
        lock.signal.addEventListener(
          'abort',
          () => diagnostics.unsubscribe(channels.extend, onExtend),
          { once: true },
        );
      },
      onLost: (reason) => report('lost', { reason: reason.message }),
      onError: (error) => report('error', { message: (error as Error).message }),
    },
    async (signal, lock) => {
      try {
        // A plain loop, as schedulers are written: it checks the signal between
        // ticks, not between the decision to write and the write.
        for (let beat = 1; !signal.aborted; beat++) {
          const value = `${host} beat ${beat}`;
          const result = await fencedSet(store, SCHEDULER_HEARTBEAT, value, lock.fence!);
          if (!result.accepted) {
            report('rejected', { token: lock.fence, highest: result.highest });
            return;
          }
          report('beat', { beat, fence: lock.fence });
          await sleep(tick, undefined, { signal }).catch(() => {});
        }
      } finally {
        // The term's work ends here; the lock is released only after this.
        report('stepped-down', { fence: lock.fence });
      }
    },
  );

  const stop = async () => {
    const started = Date.now();
    await leader.stop();
    report('resigned', { tookMs: Date.now() - started });
    await redlock.close();
    store.disconnect();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  report('campaigning');
}

main().catch((err: unknown) => {
  report('error', { message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
