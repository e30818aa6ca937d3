import { afterAll } from 'vitest';
import { startMySql } from '../harness/mysql.mjs';
import { databaseTarget, describeLossContract, describeProviderContract } from './contract.js';

// One server for both suites (the loss suite, which kills and restarts it, runs last).
let server: ReturnType<typeof startMySql> | undefined;
const target = async () => {
  server ??= startMySql();
  return {
    ...databaseTarget(await server, {
      via: (port) => `mysql://quorumlock@127.0.0.1:${port}/app`,
      connections: "SELECT count(*) FROM information_schema.processlist WHERE user = 'quorumlock'",
      terminate: (id) => `KILL CONNECTION ${id}`,
    }),
    stop: async () => {},
  };
};
afterAll(async () => {
  if (server) await (await server).stop();
});

describeProviderContract('MariaDB', target);
describeLossContract('MariaDB', target);
