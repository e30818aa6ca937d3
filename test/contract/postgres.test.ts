import { startPostgres } from '../harness/postgres.mjs';
import { databaseTarget, describeLossContract, describeProviderContract } from './contract.js';

const target = async () =>
  databaseTarget(await startPostgres(), {
    via: (port) => `postgres://postgres@127.0.0.1:${port}/postgres`,
    connections: "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'quorumlock'",
    terminate: (pid) => `SELECT pg_terminate_backend(${pid})`,
  });

describeProviderContract('PostgreSQL', target);
describeLossContract('PostgreSQL', target);
