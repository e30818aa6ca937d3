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

/** The pub/sub channel on which releases of `resource` are announced. */
export function releaseChannel(prefix: string, resource: string): string {
  return `${prefix}{${resource}}:released`;
}
