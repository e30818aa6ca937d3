import { startMySql } from '../harness/mysql.mjs';
import { databaseTarget, describeLossContract, describeProviderContract } from './contract.js';

const target = async () =>
  databaseTarget(await startMySql(), {
    via: (port) => `mysql://quorumlock@127.0.0.1:${port}/app`,
    connections: "SELECT count(*) FROM information_schema.processlist WHERE user = 'quorumlock'",
    terminate: (id) => `KILL CONNECTION ${id}`,
  });

describeProviderContract('MariaDB', target);
describeLossContract('MariaDB', target);
