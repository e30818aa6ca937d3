import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { openZkClient, type ZkClient } from '../../src/zookeeper/client.js';
import { startZooKeeper, type ZooKeeper } from '../harness/zookeeper.mjs';

let zk: ZooKeeper;
beforeAll(async () => {
  zk = await startZooKeeper();
});
afterAll(() => zk?.stop());

async function connected(client: ZkClient): Promise<void> {
  if (client.state === 'connected') return;
  await new Promise<void>((resolve) => {
    const stop = client.onState((s) => {
      if (s === 'connected') {
        stop();
        resolve();
      }
    });
  });
}

describe('ZooKeeper client adapter', () => {
  it('creates container parents and ephemeral sequential children owned by its session', async () => {
    const client = await openZkClient({
      hosts: zk.hosts,
      sessionTimeout: 2000,
      clock: systemClock,
    });
    await connected(client);
    expect(client.sessionTimeout).toBe(2000);
    await client.create('/c', Buffer.alloc(0), 'container');
    const child = await client.create('/c/x-', Buffer.from('v'), 'ephemeral-sequential');
    expect(child).toMatch(/^\/c\/x-\d{10}$/);
    const got = await client.getData(child);
    expect(got?.data.toString()).toBe('v');
    expect(got?.stat.ephemeralOwner).toBe(client.sessionId);
    expect(await client.children('/c')).toEqual([child.slice(3)]);
    // The create's reply carries the zxid of its own transaction: the node's czxid.
    const made = await client.createEphemeralSequential('/c/y-', Buffer.from('w'));
    expect(made.zxid).toBe((await client.stat(made.path))?.czxid);
    expect(await client.remove(made.path)).toBe(true);
    expect(await client.remove(child)).toBe(true);
    expect(await client.remove(child)).toBe(false);
    // A container goes once its last child has gone; a persistent node would stay.
    await client.create('/p', Buffer.alloc(0), 'persistent');
    await client
      .create('/p/x-', Buffer.alloc(0), 'ephemeral-sequential')
      .then((p) => client.remove(p));
    while ((await client.stat('/c')) !== null) await sleep(50);
    expect(await client.stat('/p')).not.toBeNull();
    await client.close();
  });
});
