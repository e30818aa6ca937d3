import { startEnsemble } from '../harness/ensemble.js';
import { describeProviderContract } from './contract.js';

describeProviderContract('Redis (Redlock over 3 masters)', async () => {
  const ensemble = await startEnsemble({ size: 3 });
  // One admin connection per node, opened now, so counting opens none.
  const admins = ensemble.nodes.map((n) => n.client());
  return {
    urls: ensemble.urls,
    async connections() {
      let received = 0;
      for (const admin of admins) {
        const info = await admin.info('stats');
        received += Number(/total_connections_received:(\d+)/.exec(info)![1]);
      }
      return received;
    },
    async stop() {
      for (const admin of admins) admin.disconnect();
      await ensemble.stop();
    },
  };
});
