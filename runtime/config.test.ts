import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('gives the local defaults outside production', () => {
    const c = loadConfig({});
    expect(c.ingest.port).toBe(8080);
    expect(c.query.port).toBe(8081);
    expect(c.keys).toEqual({ workspace: 'default', writeKey: 'dev-write-key', adminKey: 'dev-admin-key' });
    expect(c.clickhouse).toEqual({ kind: 'chdb', path: '.data/chdb' });
    expect(c.activation.allowLoopback).toBe(true);
    expect(c.ingest.workers).toBe(1);
  });

  it.each([
    [{ CDP_INGEST_PORT: 'eighty' }, 'CDP_INGEST_PORT'],
    [{ CDP_QUERY_PORT: '70000' }, 'CDP_QUERY_PORT'],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL'],
    [{ KAFKA_BROKERS: 'a:1,,b:2' }, 'KAFKA_BROKERS'],
    [{ CDP_KAFKA_DRIVER: 'librdkafka' }, 'CDP_KAFKA_DRIVER'],
    [{ CLICKHOUSE_URL: 'tcp://x' }, 'CLICKHOUSE_URL'],
    [{ CDP_WEBHOOK_ALLOW_LOOPBACK: 'yes' }, 'CDP_WEBHOOK_ALLOW_LOOPBACK'],
    [{ CDP_WRITE_KEY: 'short' }, 'CDP_WRITE_KEY'],
    [{ CDP_INGEST_WORKERS: '0' }, 'CDP_INGEST_WORKERS'],
    [{ CDP_INGEST_WORKERS: 'auto' }, 'CDP_INGEST_WORKERS'],
  ])('names the bad variable in %o', (env, name) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain(name);
    expect((err as ConfigError).problems.every((p) => p.startsWith(name))).toBe(true);
  });

  it('requires keys and a ClickHouse server in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
      /CDP_WRITE_KEY.*\n.*CDP_ADMIN_KEY.*\n.*CLICKHOUSE_URL/s,
    );
    const c = loadConfig({
      NODE_ENV: 'production',
      CDP_WRITE_KEY: 'write-key-123',
      CDP_ADMIN_KEY: 'admin-key-123',
      CLICKHOUSE_URL: 'http://ch:8123',
    });
    expect(c.keys.writeKey).toBe('write-key-123');
    expect(c.clickhouse.kind).toBe('server');
    // loopback webhooks are a development convenience only
    expect(c.activation.allowLoopback).toBe(false);
  });

  it('lets an explicit setting override the loopback default', () => {
    expect(loadConfig({ CDP_WEBHOOK_ALLOW_LOOPBACK: 'false' }).activation.allowLoopback).toBe(false);
  });
});
