import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcquireTimeoutError, connect, type Lock } from '../../src/index.js';
import { ZooKeeperLocks } from '../../src/zookeeper/index.js';
import { startZooKeeper, type ZooKeeper } from '../harness/zookeeper.mjs';

let zk: ZooKeeper;
const open: ZooKeeperLocks[] = [];
function locks(chroot = '/t'): ZooKeeperLocks {
  const l = new ZooKeeperLocks(zk.url(chroot), { ttl: 2000 });
  open.push(l);
  return l;
}
beforeAll(async () => {
  zk = await startZooKeeper();
});
afterAll(async () => {
  await Promise.all(open.map((l) => l.close()));
  await zk?.stop();
});

describe('ZooKeeperLocks', () => {
  it('acquires and releases, with fences that grow across holders', async () => {
    const a = locks();
    const l1 = await a.acquire('r1');
    expect(typeof l1.fence).toBe('number');
    expect(await a.tryAcquire('r1')).toBeNull();
    await l1.release();
    const l2 = await a.acquire('r1');
    expect(l2.fence).toBeGreaterThan(l1.fence!);
    await l2.release();
  });
});
