import { describe, expect, it } from 'vitest';
import { Child } from '../fixtures/child.mjs';

describe('without the pg and mysql2 packages', () => {
  it('Redis works, and each SQL backend fails with one MissingDriverError naming the package to install', async () => {
    const child = new Child('./missing-driver.mjs', {});
    const { code } = await child.exited;
    expect(child.stderr).toBe('');
    expect(code).toBe(0);
    expect(child.events[0]).toMatchObject({ event: 'no-error', how: 'connect(redis)' });
    const errors = child.events.filter((e) => e.event === 'error');
    expect(errors.map((e) => [e.how, e.name, e.code, e.packageName])).toEqual([
      ['connect(postgres)', 'MissingDriverError', 'ERR_LOCK_DRIVER_MISSING', 'pg'],
      ['connect(mysql)', 'MissingDriverError', 'ERR_LOCK_DRIVER_MISSING', 'mysql2'],
      ['PostgresLocks.acquire', 'MissingDriverError', 'ERR_LOCK_DRIVER_MISSING', 'pg'],
      ['MySqlLocks.tryAcquire', 'MissingDriverError', 'ERR_LOCK_DRIVER_MISSING', 'mysql2'],
    ]);
    for (const e of errors) expect(e.message).toMatch(/npm install (pg|mysql2)/);
  });
});
