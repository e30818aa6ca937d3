/**
 * How a resource name maps to Redis keys. The resource is wrapped in a hash
 * tag so a Redis Cluster keeps its lock key and fence counter in one slot.
 */

/** The key holding the lock value of `resource`. */
export function lockKey(prefix: string, resource: string): string {
  return `${prefix}{${resource}}`;
}

/** The key holding the fence counter of `resource`. */
export function fenceKey(prefix: string, resource: string): string {
  return `${prefix}{${resource}}:fence`;
}

/** The sorted set of waiters queued for `resource` (member -> ticket). */
export function queueKey(prefix: string, resource: string): string {
  return `${prefix}{${resource}}:queue`;
}

/** The sorted set of the queued waiters' leases (member -> lease end, server ms). */
export function leaseKey(prefix: string, resource: string): string {
  return `${prefix}{${resource}}:lease`;
}

/**
 * Prefix of the channels on which turns are announced: one channel per
 * Redlock instance, the prefix followed by the instance id.
 */
export function turnChannelPrefix(prefix: string): string {
  return `${prefix}turn:`;
}

/** The value a lock key holds while it is reserved for `member`'s turn. */
export function turnMark(member: string): string {
  return `~turn~${member}`;
}
