/**
 * The resource side of fencing: a Redis store that accepts a write only with a
 * fencing token at least as high as the highest it has seen for the resource.
 * A holder whose lock expired while it was paused carries an older token than
 * the next holder, so its late writes are refused here, whatever the clocks say.
 *
 * Each guarded key has a highest-token key in the same hash slot (so the check
 * and the write run in one script, also on Redis Cluster). By default it is
 * derived from the guarded key; pass `fenceKey` to share one mark between
 * several keys of one resource.
 *
 * Tokens are typed `number | undefined` so that `lock.fence` can be passed as
 * it is; an undefined token (fencing off) is an InvalidArgumentError. Bad input
 * throws InvalidArgumentError before anything is sent; what the store itself
 * raises (connection errors, a command's own error such as WRONGTYPE) is
 * thrown as ioredis raised it, unwrapped.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import { InvalidArgumentError } from '../errors.js';

const FENCED_CALL = readFileSync(new URL('./scripts/fenced-call.lua', import.meta.url), 'utf8');
const FENCED_CALL_SHA = createHash('sha1').update(FENCED_CALL).digest('hex');

/** Suffix of the derived highest-token key. */
const HIGHEST_SUFFIX = ':highest-fence';

/** A value Redis accepts as a command argument. */
export type FencedArgument = string | Buffer | number;

/** Where the guard keeps the highest token seen for the resource. */
export interface FenceGuardOptions {
  /**
   * Key holding the highest token seen; defaults to `highestFenceKey(key)`. It
   * must share the guarded key's hash tag (or be in its slot by having the
   * whole guarded key as its tag); several keys of one resource may share it.
   */
  readonly fenceKey?: string;
}

/** Options of `fencedSet`. */
export interface FencedSetOptions extends FenceGuardOptions {
  /** Time to live of the written value in ms (SET … PX); none by default. */
  readonly ttl?: number;
}

/** What the guard decided. */
export interface FencedResult {
  /** True when the token was at least the highest seen and the write was applied. */
  readonly accepted: boolean;
  /** The highest token seen for the resource after this call (the token itself when accepted). */
  readonly highest: number;
}

/** What the guard decided, with the command's own reply when it ran. */
export interface FencedCallResult extends FencedResult {
  /** The command's reply when accepted, `undefined` when rejected. */
  readonly reply: unknown;
}

/**
 * The default highest-token key of `key`, in the same Redis Cluster slot: the
 * key plus a suffix when it has a hash tag, otherwise the whole key wrapped as
 * the tag. Throws InvalidArgumentError for an untagged key containing `}`,
 * which no derived key can share a slot with; give such keys a `fenceKey`.
 */
export function highestFenceKey(key: string): string {
  checkKey(key, 'key');
  if (hashTag(key) !== null) return key + HIGHEST_SUFFIX;
  if (key.includes('}')) {
    throw new InvalidArgumentError(
      `cannot derive a highest-token key in the slot of "${key}": it has no hash tag and contains "}"; pass a fenceKey that shares its slot, or use a key with a {hash tag}`,
    );
  }
  return `{${key}}${HIGHEST_SUFFIX}`;
}

/**
 * Sets `key` to `value` if `token` is at least the highest token seen for the
 * resource, and records `token` as the highest; otherwise writes nothing.
 */
export async function fencedSet(
  redis: Redis | Cluster,
  key: string,
  value: FencedArgument,
  token: number | undefined,
  opts: FencedSetOptions = {},
): Promise<FencedResult> {
  checkValue(value, 'value');
  if (opts.ttl !== undefined && !(Number.isSafeInteger(opts.ttl) && opts.ttl > 0)) {
    throw new InvalidArgumentError(
      `ttl must be a positive integer number of ms, got ${String(opts.ttl)}`,
    );
  }
  const args = opts.ttl === undefined ? [value] : [value, 'PX', opts.ttl];
  const { accepted, highest } = await fencedCall(redis, key, token, 'SET', args, opts);
  return { accepted, highest };
}

/**
 * Deletes `key` if `token` is at least the highest token seen for the
 * resource, and records `token` as the highest; otherwise leaves it. The
 * highest-token key stays, so older holders remain fenced off.
 */
export async function fencedDel(
  redis: Redis | Cluster,
  key: string,
  token: number | undefined,
  opts: FenceGuardOptions = {},
): Promise<FencedResult> {
  const { accepted, highest } = await fencedCall(redis, key, token, 'DEL', [], opts);
  return { accepted, highest };
}

/**
 * Runs `command key ...args` (any command that touches only `key`, such as
 * HSET, INCRBY or XADD) if `token` is at least the highest token seen for the
 * resource, and records `token` as the highest; otherwise runs nothing. If the
 * command itself fails, the error is thrown and the highest token is unchanged.
 */
export async function fencedCall(
  redis: Redis | Cluster,
  key: string,
  token: number | undefined,
  command: string,
  args: readonly FencedArgument[] = [],
  opts: FenceGuardOptions = {},
): Promise<FencedCallResult> {
  checkKey(key, 'key');
  checkToken(token);
  if (typeof command !== 'string' || !/^[A-Za-z][A-Za-z0-9._|-]*$/.test(command)) {
    throw new InvalidArgumentError(`command must be a Redis command name, got ${String(command)}`);
  }
  if (!Array.isArray(args)) throw new InvalidArgumentError('args must be an array');
  for (const [i, a] of args.entries()) checkValue(a, `args[${i}]`);
  return runGuard(redis, key, guardKeyOf(key, opts), token, command, args);
}

/**
 * Records `token` as the highest seen for the resource of `key` if it is at
 * least the highest, writing nothing else. Claim before a read-modify-write:
 * once claimed, a stale holder can no longer write between your read and your write.
 */
export async function fencedClaim(
  redis: Redis | Cluster,
  key: string,
  token: number | undefined,
  opts: FenceGuardOptions = {},
): Promise<FencedResult> {
  checkKey(key, 'key');
  checkToken(token);
  const { accepted, highest } = await runGuard(redis, key, guardKeyOf(key, opts), token, '', []);
  return { accepted, highest };
}

/** The highest token the guard has seen for the resource of `key`, or null if none yet. */
export async function highestFence(
  redis: Redis | Cluster,
  key: string,
  opts: FenceGuardOptions = {},
): Promise<number | null> {
  checkKey(key, 'key');
  const stored = await redis.get(guardKeyOf(key, opts));
  return stored === null ? null : Number(stored);
}

/** Runs the guard script; an empty `command` only records the token. */
async function runGuard(
  redis: Redis | Cluster,
  key: string,
  fenceKey: string,
  token: number,
  command: string,
  args: readonly FencedArgument[],
): Promise<FencedCallResult> {
  const keys = [key, fenceKey];
  const argv = [String(token), command, ...args];
  let reply: unknown;
  try {
    reply = await redis.evalsha(FENCED_CALL_SHA, 2, ...keys, ...argv);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    reply = await redis.eval(FENCED_CALL, 2, ...keys, ...argv);
  }
  const [ok, highest, result] = reply as [number, string, unknown];
  return ok === 1
    ? { accepted: true, highest: Number(highest), reply: result }
    : { accepted: false, highest: Number(highest), reply: undefined };
}

function guardKeyOf(key: string, opts: FenceGuardOptions): string {
  if (opts.fenceKey === undefined) return highestFenceKey(key);
  checkKey(opts.fenceKey, 'fenceKey');
  if (opts.fenceKey === key) {
    throw new InvalidArgumentError('fenceKey must differ from the guarded key');
  }
  // Equal tags (a key without a tag is its own tag) mean equal slots.
  if (slotSource(opts.fenceKey) !== slotSource(key)) {
    throw new InvalidArgumentError(
      `fenceKey "${opts.fenceKey}" is not in the hash slot of "${key}"; give both the same {hash tag}`,
    );
  }
  return opts.fenceKey;
}

/** Redis Cluster's hash tag of `key`: the text between the first `{` and the next `}`, if non-empty. */
function hashTag(key: string): string | null {
  const open = key.indexOf('{');
  if (open < 0) return null;
  const close = key.indexOf('}', open + 1);
  if (close <= open + 1) return null;
  return key.slice(open + 1, close);
}

/** The part of `key` that Redis Cluster hashes to pick its slot. */
function slotSource(key: string): string {
  return hashTag(key) ?? key;
}

function checkKey(key: unknown, name: string): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidArgumentError(`${name} must be a non-empty string, got ${describe(key)}`);
  }
}

function checkToken(token: unknown): asserts token is number {
  if (token === undefined) {
    throw new InvalidArgumentError(
      'token is undefined: the lock has no fencing token (its Redlock was created with fencing: false)',
    );
  }
  if (typeof token !== 'number' || !Number.isSafeInteger(token) || token < 0) {
    throw new InvalidArgumentError(
      `token must be a non-negative safe integer (a lock's fence), got ${describe(token)}`,
    );
  }
}

function checkValue(value: unknown, name: string): void {
  const ok =
    typeof value === 'string' ||
    Buffer.isBuffer(value) ||
    (typeof value === 'number' && Number.isFinite(value));
  if (!ok) {
    throw new InvalidArgumentError(
      `${name} must be a string, Buffer or finite number, got ${describe(value)}`,
    );
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  return typeof value === 'object' && value !== null ? typeof value : String(value);
}
