import { Redis } from 'ioredis';
import { Redlock } from 'quorumlock';

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
// Your own clients, with the fail-fast settings quorumlock gives the connections it opens.
const clients = nodes.map(
  (url) =>
    new Redis(url, {
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
    }),
);
const redlock = new Redlock(clients);
await redlock.using('own-clients', async (signal, lock) => {
  console.log('held with fence', lock.fence, 'aborted:', signal.aborted);
});
await redlock.close(); // leaves the clients open: they are yours
for (const client of clients) client.disconnect();
