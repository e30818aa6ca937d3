import { describe, expect, it } from 'vitest';
import { judgeSession } from '../../src/cli/doctor-sql.js';

describe('doctor: the session check on a SQL URL', () => {
  it('passes when the lock taken in one statement is still held by the same session in the next', () => {
    expect(judgeSession({ first: '7', again: '7', other: '8', kept: true }).status).toBe('pass');
  });

  it('fails a transaction-mode pooler: the next statement ran on another server session', () => {
    const check = judgeSession({ first: '7', again: '9', other: '8', kept: false });
    expect(check.status).toBe('fail');
    expect(check.fix).toMatch(/session-mode pooler/);
  });

  it('fails a pooler that handed the same server session to a second connection', () => {
    expect(judgeSession({ first: '7', again: '7', other: '7', kept: true }).status).toBe('fail');
  });

  it('fails when the lock was gone although the session id looked the same', () => {
    expect(judgeSession({ first: '7', again: '7', other: '8', kept: false }).status).toBe('fail');
  });
});
