import { systemClock } from '../../src/clock.js';
import { resourcePath } from '../../src/zookeeper/backend.js';
import { openZkClient } from '../../src/zookeeper/client.js';
import { waitConnected } from '../../src/zookeeper/session.js';
import { startZooKeeper } from '../harness/zookeeper.mjs';
import { describeLossContract, describeProviderContract, type LossTarget } from './contract.js';

const BASE = '/contract';

async function target(): Promise<LossTarget> {
  const zk = await startZooKeeper();
  const server = zk.servers[0]!;
  return {
    urls: [zk.url(BASE)],
    address: { host: server.host, port: server.port },
    via: (port) => `zk://127.0.0.1:${port}${BASE}`,
    async connections() {
      const mntr = await server.fourLetter('mntr');
      // The four-letter word's own connection counts too.
      return Number(/^zk_num_alive_connections\s+(\d+)/m.exec(mntr)?.[1]) - 1;
    },
    async terminate(state) {
      // ZooKeeper has no "kill session" command: deleting the holder's node ends its hold.
      const client = await openZkClient({
        hosts: zk.hosts,
        sessionTimeout: 4000,
        clock: systemClock,
      });
      try {
        await waitConnected(client, systemClock, systemClock.now() + 10_000);
        const parent = resourcePath(BASE, state.resource);
        for (const child of (await client.children(parent)) ?? []) {
          await client.remove(`${parent}/${child}`);
        }
      } finally {
        await client.close();
      }
    },
    pause: () => server.pause(),
    resume: () => server.resume(),
    kill: () => server.kill(),
    restart: () => server.start(),
    stop: () => zk.stop(),
  };
}

describeProviderContract('ZooKeeper', target);
describeLossContract('ZooKeeper', target);
