import { afterAll } from 'vitest';
import { startPostgres } from '../harness/postgres.mjs';
import { databaseTarget, describeLossContract, describeProviderContract } from './contract.js';

// One server for both suites (the loss suite, which kills and restarts it, runs last).
let server: ReturnType<typeof startPostgres> | undefined;
const target = async () => {
  server ??= startPostgres();
  return {
    ...databaseTarget(await server, {
      via: (port) => `postgres://postgres@127.0.0.1:${port}/postgres`,
      connections: "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'quorumlock'",
      terminate: (pid) => `SELECT pg_terminate_backend(${pid})`,
    }),
    stop: async () => {},
  };
};
afterAll(async () => {
  if (server) await (await server).stop();
});

describeProviderContract('PostgreSQL', target);
describeLossContract('PostgreSQL', target);
