/** Types of mysql.mjs, for the TypeScript tests. */
import type { DatabaseServer } from './processes.mjs';

/** A running MariaDB server; `url` is `mysql://quorumlock@127.0.0.1:<port>/app`. */
export type MySqlServer = DatabaseServer;

/** Starts a fresh MariaDB server on a free 127.0.0.1 port. */
export function startMySql(): Promise<MySqlServer>;
