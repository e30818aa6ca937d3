/**
 * How a resource name becomes a database lock key. FROZEN: every version of
 * quorumlock must derive the same key from the same name, or two versions of
 * one application would not exclude each other.
 *
 *   key = the first 8 bytes of SHA-256("quorumlock:v1:" + name) (UTF-8),
 *         read as a big-endian signed 64-bit integer
 *
 * PostgreSQL locks `key` in the single-bigint advisory key space
 * (`pg_advisory_lock(key)`); MySQL/MariaDB lock the name
 * `"quorumlock:" + 16 lowercase hex digits of key as unsigned` (27
 * characters: within the 64-character limit, and case does not matter).
 * The fence counter row of a lock is keyed by `key` on both. Two names with
 * the same key share one lock (chance about n²/2⁶⁵ for n names).
 */
import { createHash } from 'node:crypto';

/** The 64-bit lock key of `resource` (see the formula above). */
export function lockKey(resource: string): bigint {
  const digest = createHash('sha256').update(`quorumlock:v1:${resource}`, 'utf8').digest();
  return digest.readBigInt64BE(0);
}

/** The MySQL/MariaDB user-lock name of a key. */
export function lockName(key: bigint): string {
  return `quorumlock:${BigInt.asUintN(64, key).toString(16).padStart(16, '0')}`;
}
