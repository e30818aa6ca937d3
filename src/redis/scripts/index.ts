/**
 * The Lua scripts, read once from the .lua files beside this module, with
 * their SHA1 for EVALSHA.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A Lua script and its SHA1 digest. */
export interface Script {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

function load(name: string): Script {
  const lua = readFileSync(new URL(`./${name}.lua`, import.meta.url), 'utf8');
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Every script the library runs on a node. */
export const scripts = {
  acquire: load('acquire'),
  extend: load('extend'),
  release: load('release'),
  fenceSync: load('fence-sync'),
  inspect: load('inspect'),
  permits: load('permits'),
} as const;
