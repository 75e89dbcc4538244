import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

const WRITE = 'w'.repeat(32);
const ADMIN = 'a'.repeat(40);
const UNSUB = 'u'.repeat(32);

/** The problems a configuration is refused with (none: it loads). */
function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

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
    [{ CDP_TOPIC_REPLICATION: '0' }, 'CDP_TOPIC_REPLICATION'],
    [{ CDP_TOPIC_MIN_INSYNC: 'all' }, 'CDP_TOPIC_MIN_INSYNC'],
    [{ CDP_TOPIC_REPLICATION: '2', CDP_TOPIC_MIN_INSYNC: '3' }, 'CDP_TOPIC_MIN_INSYNC'],
    [{ CDP_REDIS_DURABILITY: 'fsync' }, 'CDP_REDIS_DURABILITY'],
    [{ CDP_REDIS_WAITAOF_TIMEOUT_MS: '10' }, 'CDP_REDIS_WAITAOF_TIMEOUT_MS'],
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
      CDP_WRITE_KEY: WRITE,
      CDP_ADMIN_KEY: ADMIN,
      CDP_UNSUBSCRIBE_SECRET: UNSUB,
      CLICKHOUSE_URL: 'http://ch:8123',
    });
    expect(c.keys.writeKey).toBe(WRITE);
    expect(c.unsubscribe.secret).toBe(UNSUB);
    expect(c.clickhouse.kind).toBe('server');
    // loopback webhooks are a development convenience only
    expect(c.activation.allowLoopback).toBe(false);
  });

  it('leaves replication to the cluster size and Redis durability off by default', () => {
    const c = loadConfig({});
    expect(c.kafka.replication).toBeUndefined();
    expect(c.kafka.minInsync).toBeUndefined();
    expect(c.redis.durability).toBe('none');
    const set = loadConfig({
      CDP_TOPIC_REPLICATION: '3',
      CDP_TOPIC_MIN_INSYNC: '2',
      CDP_REDIS_DURABILITY: 'waitaof',
    });
    expect([set.kafka.replication, set.kafka.minInsync, set.redis.durability]).toEqual([3, 2, 'waitaof']);
  });

  it('lets an explicit setting override the loopback default', () => {
    expect(loadConfig({ CDP_WEBHOOK_ALLOW_LOOPBACK: 'false' }).activation.allowLoopback).toBe(false);
  });
});

describe('safe defaults beyond loopback', () => {
  const exposed = {
    CDP_INGEST_HOST: '0.0.0.0',
    CDP_WRITE_KEY: WRITE,
    CDP_ADMIN_KEY: ADMIN,
    CDP_UNSUBSCRIBE_SECRET: UNSUB,
  };

  it('starts on loopback with the development keys (npm start keeps working)', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost', '127.0.1.1'])
      expect(problems({ CDP_INGEST_HOST: host, CDP_QUERY_HOST: host })).toEqual([]);
    const c = loadConfig({});
    expect(c.unsubscribe.secret.length).toBeGreaterThanOrEqual(32);
  });

  it('starts beyond loopback with long keys and its own unsubscribe secret', () => {
    const c = loadConfig(exposed);
    expect(c.keys.adminKey).toBe(ADMIN);
    expect(c.unsubscribe.secret).toBe(UNSUB);
    // no loopback webhooks by default once exposed, even outside production
    expect(c.activation.allowLoopback).toBe(false);
  });

  it.each([
    [
      { CDP_WRITE_KEY: undefined },
      'CDP_WRITE_KEY: required when listening beyond loopback (CDP_INGEST_HOST=0.0.0.0)',
    ],
    [{ CDP_ADMIN_KEY: undefined }, 'CDP_ADMIN_KEY: required when listening beyond loopback'],
    [{ CDP_WRITE_KEY: 'dev-write-key' }, 'CDP_WRITE_KEY: the public development key is refused'],
    [{ CDP_ADMIN_KEY: 'dev-admin-key' }, 'CDP_ADMIN_KEY: the public development key is refused'],
    [{ CDP_ADMIN_KEY: 'x'.repeat(31) }, 'CDP_ADMIN_KEY: 31 characters; at least 32 are required'],
    [{ CDP_WRITE_KEY: 'x'.repeat(20) }, 'CDP_WRITE_KEY: 20 characters; at least 32 are required'],
    [
      { CDP_UNSUBSCRIBE_SECRET: undefined },
      'CDP_UNSUBSCRIBE_SECRET: required when listening beyond loopback',
    ],
    [{ CDP_UNSUBSCRIBE_SECRET: 'u'.repeat(20) }, 'CDP_UNSUBSCRIBE_SECRET: 20 characters'],
    [{ CDP_UNSUBSCRIBE_SECRET: ADMIN }, 'CDP_UNSUBSCRIBE_SECRET: must differ from CDP_ADMIN_KEY'],
    [
      { CDP_WEBHOOK_ALLOW_LOOPBACK: 'true' },
      'CDP_WEBHOOK_ALLOW_LOOPBACK: true is refused when listening beyond loopback',
    ],
  ])('refuses %o naming the variable', (change, message) => {
    const env: Record<string, string> = { ...exposed };
    for (const [k, v] of Object.entries(change)) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const found = problems(env);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(message);
    // a secret's value never appears in the error
    for (const v of Object.values(change)) if (v && v.length >= 20) expect(found[0]).not.toContain(v);
  });

  it('applies to the query listener too, and to production on loopback', () => {
    expect(problems({ CDP_QUERY_HOST: '10.1.2.3' })).toEqual([
      expect.stringMatching(
        /^CDP_WRITE_KEY: required when listening beyond loopback \(CDP_QUERY_HOST=10\.1\.2\.3\)/,
      ),
      expect.stringMatching(/^CDP_ADMIN_KEY: required/),
      expect.stringMatching(/^CDP_UNSUBSCRIBE_SECRET: required/),
    ]);
    expect(
      problems({
        NODE_ENV: 'production',
        CLICKHOUSE_URL: 'http://ch:8123',
        CDP_WRITE_KEY: WRITE,
        CDP_ADMIN_KEY: 'dev-admin-key',
      }),
    ).toEqual([
      expect.stringMatching(/^CDP_ADMIN_KEY: the public development key is refused when NODE_ENV=production/),
      expect.stringMatching(/^CDP_UNSUBSCRIBE_SECRET: required when NODE_ENV=production/),
    ]);
  });
});

describe('send deadlines and the claim lease', () => {
  it('refuses a webhook or channel deadline not shorter than the lease, naming both variables', () => {
    expect(problems({ CDP_ACTIVATION_CLAIM_LEASE_MS: '3000', CDP_WEBHOOK_TIMEOUT_MS: '3000' })).toEqual([
      expect.stringMatching(
        /^CDP_WEBHOOK_TIMEOUT_MS: 3000 ms must be shorter than CDP_ACTIVATION_CLAIM_LEASE_MS \(3000 ms\)/,
      ),
      expect.stringMatching(
        /^CDP_CHANNEL_TIMEOUT_MS: 10000 ms must be shorter than CDP_ACTIVATION_CLAIM_LEASE_MS/,
      ),
    ]);
    expect(
      problems({
        CDP_ACTIVATION_CLAIM_LEASE_MS: '3000',
        CDP_WEBHOOK_TIMEOUT_MS: '2999',
        CDP_CHANNEL_TIMEOUT_MS: '2000',
      }),
    ).toEqual([]);
    expect(problems({})).toEqual([]);
  });
});

describe('event time bounds', () => {
  it('defaults to about five years back and a day ahead', () => {
    const { timeBounds } = loadConfig({}).ingest;
    expect(timeBounds.maxPastMs / 86_400_000 / 365.25).toBeCloseTo(5, 1);
    expect(timeBounds.maxFutureMs).toBe(86_400_000);
    expect(loadConfig({ CDP_INGEST_MAX_FUTURE_HOURS: '2' }).ingest.timeBounds.maxFutureMs).toBe(7_200_000);
    expect(problems({ CDP_INGEST_MAX_PAST_DAYS: '0' })[0]).toMatch(/^CDP_INGEST_MAX_PAST_DAYS/);
  });
});
