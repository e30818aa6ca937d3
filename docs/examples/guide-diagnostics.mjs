import diagnostics from 'node:diagnostics_channel';
import { channels, Redlock } from 'quorumlock';

/** @import { RoundEvent } from 'quorumlock' */

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
for (const name of Object.values(channels)) {
  diagnostics.subscribe(name, (message) => {
    const event = /** @type {Partial<RoundEvent>} */ (message);
    const per = event.nodes?.map((n) => `${n.node}=${n.status}`).join(' ') ?? '';
    console.log(name, event.ok ?? '', event.durationMs?.toFixed(2) ?? '', event.reason ?? '', per);
  });
}
const redlock = new Redlock(nodes);
await redlock.using('metrics-demo', { ttl: 600 }, () => new Promise((r) => setTimeout(r, 500)));
await redlock.close();
