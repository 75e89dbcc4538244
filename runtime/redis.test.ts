// The cluster URL (REDIS_URL=redis-cluster://…) and the slot of a key, pure logic; the
// cluster client itself is tested on a real cluster (test/scale/redis-cluster.test.ts).
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { isClusterUrl, keySlot, parseClusterUrl } from './redis.ts';

describe('parseClusterUrl', () => {
  it('reads nodes, credentials and TLS', () => {
    expect(parseClusterUrl('redis-cluster://10.0.0.1:7000,10.0.0.2:7001,redis-3.internal:7002')).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: 'redis-3.internal', port: 7002 },
      ],
      tls: false,
    });
    expect(parseClusterUrl('rediss-cluster://app:p%40ss%3Aw@[::1]:7000/')).toEqual({
      nodes: [{ host: '::1', port: 7000 }],
      username: 'app',
      password: 'p@ss:w',
      tls: true,
    });
    expect(parseClusterUrl('redis-cluster://:secret@h:1')).toEqual({
      nodes: [{ host: 'h', port: 1 }],
      password: 'secret',
      tls: false,
    });
  });

  it('refuses what is not a node list, saying what it expected', () => {
    for (const bad of [
      'redis-cluster://',
      'redis-cluster://host',
      'redis-cluster://host:0',
      'redis-cluster://host:70000',
      'redis-cluster://a:1,,b:2',
      'redis-cluster://a:1/db0',
      'redis-cluster://a b:1',
      'redis-cluster://a:1?x=y',
    ])
      expect(() => parseClusterUrl(bad), bad).toThrow(/REDIS_URL/);
  });

  it('a cluster URL is told from a single server one, and the config takes both', () => {
    expect(isClusterUrl('redis-cluster://h:1')).toBe(true);
    expect(isClusterUrl('rediss-cluster://h:1')).toBe(true);
    expect(isClusterUrl('redis://h:1')).toBe(false);
    expect(loadConfig({ REDIS_URL: 'redis-cluster://h:1,h:2' }).redis.url).toBe('redis-cluster://h:1,h:2');
    expect(() => loadConfig({ REDIS_URL: 'memcached://h:1' })).toThrow(/REDIS_URL/);
  });
});

describe('keySlot', () => {
  it('is Redis Cluster’s CRC16 slot of the hash tag', () => {
    expect(keySlot('123456789')).toBe(0x31c3 % 16384);
    expect(keySlot('foo')).toBe(12182); // CLUSTER KEYSLOT foo
    expect(keySlot('a{foo}b')).toBe(keySlot('foo'));
    // an empty tag is no tag: the whole key counts
    expect(keySlot('{}foo')).not.toBe(keySlot('foo'));
    expect(keySlot('cdp:{ws_1}:p:x')).toBe(keySlot('cdp:{ws_1}:s:seg:m'));
  });
});
