// Configuration is read once per service from the environment, validated against a
// TypeBox schema, and handed to the composition root as a typed object. Nothing else in
// the code base reads process.env. A bad value is a startup error that names the variable.
import { createHmac } from 'node:crypto';
import { type Static, type TObject, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import {
  DEV_ADMIN_KEY,
  DEV_WRITE_KEY,
  deadlineProblems,
  exposure,
  exposureProblems,
} from './config-checks.ts';
import { type Keyring, keyring, parseSecretKey, type SecretKey } from './secrets-key.ts';

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const Port = (def: number) => Type.Integer({ minimum: 0, maximum: 65535, default: def });
const Bool = (def: boolean) =>
  Type.Union([Type.Literal('true'), Type.Literal('false')], { default: String(def) });

/** Every variable the services understand, with its default for the local stack. */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
  }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  CDP_DATA_DIR: Type.String({ minLength: 1, default: '.data' }),

  KAFKA_BROKERS: Type.String({ pattern: '^[^,\\s]+(,[^,\\s]+)*$', default: '127.0.0.1:9092' }),
  CDP_KAFKA_DRIVER: Type.Union([Type.Literal('kafkajs'), Type.Literal('rdkafka')], { default: 'kafkajs' }),
  CDP_TOPIC_PREFIX: Type.String({ pattern: '^[A-Za-z0-9._-]*$', default: '' }),
  CDP_TOPIC_PARTITIONS: Type.Integer({ minimum: 1, maximum: 1024, default: 8 }),
  /** Copies of each partition; unset: min(3, brokers in the cluster). */
  CDP_TOPIC_REPLICATION: Type.Optional(Type.Integer({ minimum: 1, maximum: 32 })),
  /** min.insync.replicas of created topics; unset: replication − 1 (at least 1). */
  CDP_TOPIC_MIN_INSYNC: Type.Optional(Type.Integer({ minimum: 1, maximum: 32 })),

  /** redis://… one server; redis-cluster://host:port,host:port,… a Redis Cluster (runtime/redis.ts). */
  REDIS_URL: Type.String({ pattern: '^rediss?(-cluster)?://', default: 'redis://127.0.0.1:6379' }),
  CDP_REDIS_PREFIX: Type.String({ pattern: '^[A-Za-z0-9._-]+$', default: 'cdp' }),
  /** What a consumer batch waits for before its offsets are committed (runtime/redis-durability.ts). */
  CDP_REDIS_DURABILITY: Type.Union(
    [Type.Literal('none'), Type.Literal('waitaof'), Type.Literal('appendfsync-always')],
    { default: 'none' },
  ),
  CDP_REDIS_WAITAOF_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000 }),

  CLICKHOUSE_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  CLICKHOUSE_USER: Type.String({ default: 'default' }),
  CLICKHOUSE_PASSWORD: Type.String({ default: '' }),
  CLICKHOUSE_DATABASE: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', default: 'cdp' }),

  CDP_WRITE_KEY: Type.Optional(Type.String({ minLength: 8 })),
  CDP_ADMIN_KEY: Type.Optional(Type.String({ minLength: 8 })),
  CDP_DEFAULT_WORKSPACE: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'default' }),

  CDP_INGEST_HOST: Type.String({ default: '127.0.0.1' }),
  CDP_INGEST_PORT: Port(8080),
  CDP_INGEST_PRODUCE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 10_000 }),
  CDP_INGEST_LINGER_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 5 }),
  CDP_INGEST_WORKERS: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
  CDP_INGEST_RATE_LIMIT: Type.Integer({ minimum: 0, default: 50_000 }),
  CDP_INGEST_RATE_BURST: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Oldest and newest event time accepted, relative to the server's clock (after skew correction). */
  CDP_INGEST_MAX_PAST_DAYS: Type.Integer({ minimum: 1, maximum: 36_500, default: 1826 }),
  CDP_INGEST_MAX_FUTURE_HOURS: Type.Integer({ minimum: 0, maximum: 8760, default: 24 }),
  /** Forms (ingest/forms.ts): the key signing a form's time-to-fill token, and its bounds. */
  CDP_FORMS_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  CDP_FORMS_MIN_FILL_SECONDS: Type.Integer({ minimum: 0, maximum: 3600, default: 3 }),
  CDP_FORMS_MAX_AGE_HOURS: Type.Integer({ minimum: 1, maximum: 720, default: 24 }),
  /** Submissions per client address, and per form, per minute (0: no limit). */
  CDP_FORMS_IP_RATE_PER_MINUTE: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 20 }),
  CDP_FORMS_FORM_RATE_PER_MINUTE: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 600 }),
  /** Prometheus `/metrics` of the process on this port (unset: no metrics listener; 0: any free port). */
  CDP_METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  /** Where the metrics listener binds: loopback unless the scraper is elsewhere. */
  CDP_METRICS_HOST: Type.String({ default: '127.0.0.1' }),
  /**
   * The hot-key lane: events per second one person or anonymous id may send before the excess
   * goes to cdp.events-overflow (0: off), with this burst on top.
   */
  CDP_HOT_KEY_RATE: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 50 }),
  CDP_HOT_KEY_BURST: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 500 }),
  CDP_QUERY_HOST: Type.String({ default: '127.0.0.1' }),
  CDP_QUERY_PORT: Port(8081),
  /** Failed admin authentications per client address per minute before 429s (0: no limit). */
  CDP_ADMIN_AUTH_MAX_FAILURES: Type.Integer({ minimum: 0, maximum: 100_000, default: 10 }),
  /** The ClickHouse HTTP interface for BI tools on the query host (chDB only; query/bi-sql/). */
  CDP_BI_SQL: Bool(true),
  CDP_BI_HOST: Type.Optional(Type.String()),
  /** Default 8123 (ClickHouse's HTTP port); 0 (any free port) when CDP_QUERY_PORT is 0. */
  CDP_BI_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  CDP_BI_MAX_EXECUTION_S: Type.Integer({ minimum: 1, maximum: 3600, default: 30 }),
  CDP_BI_MAX_RESULT_ROWS: Type.Integer({ minimum: 1, maximum: 1_000_000_000, default: 1_000_000 }),
  CDP_BI_MAX_RESULT_BYTES: Type.Integer({ minimum: 1000, maximum: 100_000_000_000, default: 100_000_000 }),
  CDP_BI_MAX_MEMORY_BYTES: Type.Integer({
    minimum: 10_000_000,
    maximum: 1_000_000_000_000,
    default: 1_000_000_000,
  }),
  CDP_BI_MAX_CONCURRENT: Type.Integer({ minimum: 1, maximum: 256, default: 4 }),

  CDP_WEBHOOK_ALLOW_LOOPBACK: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
  CDP_WEBHOOK_ALLOW_PRIVATE: Bool(false),
  CDP_WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  // activation: channels
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://' })),
  CDP_EMAIL_FROM: Type.String({ minLength: 3, default: 'cdp <no-reply@localhost>' }),
  CDP_EMAIL_PROVIDER: Type.Union(
    [Type.Literal('smtp'), Type.Literal('ses'), Type.Literal('sendgrid'), Type.Literal('postmark')],
    { default: 'smtp' },
  ),
  CDP_SES_REGION: Type.String({ pattern: '^$|^[a-z]{2}(-[a-z]+)+-\\d+$', default: '' }),
  CDP_SES_ACCESS_KEY_ID: Type.String({ default: '' }),
  CDP_SES_SECRET_ACCESS_KEY: Type.String({ default: '' }),
  /** Temporary credentials (STS): the session token that goes with the key pair. */
  CDP_SES_SESSION_TOKEN: Type.String({ default: '' }),
  /** Default https://email.<region>.amazonaws.com; set for a VPC endpoint or a local stand-in. */
  CDP_SES_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://' })),
  /**
   * SNS topics the SES event webhook takes messages from (comma list of TopicArns); unset: it
   * refuses all (a valid SNS signature proves only that some topic sent it).
   */
  CDP_SES_SNS_TOPIC_ARNS: Type.String({ default: '' }),
  /** Testing and stand-ins only: the origin SNS signing certificates may come from instead of sns.<region>.amazonaws.com. */
  CDP_SES_SNS_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://' })),
  CDP_SENDGRID_API_KEY: Type.String({ default: '' }),
  CDP_SENDGRID_BASE_URL: Type.String({ pattern: '^https?://', default: 'https://api.sendgrid.com' }),
  CDP_POSTMARK_SERVER_TOKEN: Type.String({ default: '' }),
  CDP_POSTMARK_BASE_URL: Type.String({ pattern: '^https?://', default: 'https://api.postmarkapp.com' }),
  /** Campaigns are marketing mail: Postmark wants it on a broadcast stream. */
  CDP_POSTMARK_MESSAGE_STREAM: Type.String({ minLength: 1, default: 'broadcast' }),
  /** SendGrid Signed Event Webhook verification key (base64 DER or PEM); unset: its webhook refuses all. */
  CDP_SENDGRID_WEBHOOK_PUBLIC_KEY: Type.String({ default: '' }),
  /** HTTP Basic credentials put in Postmark's webhook URL; unset: its webhook refuses all. */
  CDP_POSTMARK_WEBHOOK_USER: Type.String({ default: '' }),
  CDP_POSTMARK_WEBHOOK_PASSWORD: Type.String({ default: '' }),
  /** Bounce/complaint/delivery webhook events per address per minute on the ingest host; 0 unlimited. */
  CDP_EMAIL_WEBHOOK_RATE_PER_MINUTE: Type.Integer({ minimum: 0, default: 60 }),
  /**
   * Delays (seconds, comma list) of the resends of a soft-bounced campaign email: the first
   * 1 h after the first soft bounce, 6 h after the second; empty: soft bounces are not resent.
   */
  CDP_EMAIL_SOFT_BOUNCE_RESENDS: Type.String({
    pattern: '^\\s*(\\d{1,7}(\\s*,\\s*\\d{1,7}){0,9})?\\s*$',
    default: '3600,21600',
  }),
  CDP_SMS_BASE_URL: Type.String({ pattern: '^https?://', default: 'https://api.twilio.com' }),
  CDP_SMS_ACCOUNT_SID: Type.String({ default: '' }),
  CDP_SMS_AUTH_TOKEN: Type.String({ default: '' }),
  CDP_SMS_FROM: Type.String({ default: '' }),
  /** Answered to an inbound HELP (ingest/sms-webhooks.ts). */
  CDP_SMS_HELP_TEXT: Type.String({
    minLength: 1,
    maxLength: 1600,
    default: 'Reply STOP to unsubscribe, START to subscribe again. Msg&data rates may apply.',
  }),
  /** Twilio webhook requests per minute per client address on the ingest host; 0 unlimited. */
  CDP_SMS_WEBHOOK_RATE_PER_MINUTE: Type.Integer({ minimum: 0, default: 600 }),
  CDP_PUSH_BASE_URL: Type.String({ pattern: '^https?://', default: 'https://fcm.googleapis.com' }),
  CDP_PUSH_PROJECT: Type.String({ default: '' }),
  CDP_PUSH_TOKEN: Type.String({ default: '' }),
  CDP_PUSH_PROVIDER: Type.Union([Type.Literal('fcm'), Type.Literal('apns')], { default: 'fcm' }),
  /** A Google service account key (JSON, or the path of its file) for FCM HTTP v1. */
  CDP_PUSH_FCM_SERVICE_ACCOUNT: Type.Optional(Type.String({ minLength: 2 })),
  CDP_PUSH_APNS_URL: Type.String({ pattern: '^https?://', default: 'https://api.push.apple.com' }),
  CDP_PUSH_APNS_TEAM_ID: Type.String({ default: '' }),
  CDP_PUSH_APNS_KEY_ID: Type.String({ default: '' }),
  /** The .p8 key (PEM, or the path of the file). */
  CDP_PUSH_APNS_KEY: Type.String({ default: '' }),
  /** The app's bundle id. */
  CDP_PUSH_APNS_TOPIC: Type.String({ default: '' }),
  CDP_CHANNEL_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  /** Encrypts per-workspace channel credentials in Redis: 32 bytes, base64 or hex (runtime/secrets-key.ts). */
  CDP_SECRETS_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** The key before a rotation: still opens what it sealed until `cdp secrets rotate` re-encrypts. */
  CDP_SECRETS_KEY_PREVIOUS: Type.Optional(Type.String({ minLength: 1 })),
  /** How often activation checks whether stored channel credentials changed (one Redis GET). */
  CDP_CHANNEL_CREDENTIALS_POLL_MS: Type.Integer({ minimum: 50, maximum: 600_000, default: 1000 }),
  // activation: contact policy
  CDP_UNSUBSCRIBE_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  CDP_UNSUBSCRIBE_TTL_DAYS: Type.Integer({ minimum: 0, default: 0 }),
  CDP_PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  /** The public ingest host's URL, for double opt-in confirmation links (default its own address). */
  CDP_INGEST_PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  CDP_CAP_PER_CHANNEL_PER_DAY: Type.Integer({ minimum: 0, default: 0 }),
  CDP_CAP_PER_DAY: Type.Integer({ minimum: 0, default: 0 }),
  CDP_QUIET_HOURS: Type.String({
    pattern: '^$|^([01]\\d|2[0-3]):[0-5]\\d-([01]\\d|2[0-3]):[0-5]\\d$',
    default: '',
  }),
  CDP_DEFAULT_TIMEZONE: Type.String({ minLength: 1, default: 'UTC' }),
  // activation: retries
  CDP_ACTIVATION_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 50, default: 6 }),
  CDP_ACTIVATION_RETRY_BASE_MS: Type.Integer({ minimum: 10, default: 1000 }),
  CDP_ACTIVATION_RETRY_MAX_MS: Type.Integer({ minimum: 10, default: 10 * 60_000 }),
  CDP_ACTIVATION_CLAIM_LEASE_MS: Type.Integer({ minimum: 100, default: 60_000 }),
  CDP_ACTIVATION_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1000, default: 64 }),
  CDP_DEDUP_TTL_SECONDS: Type.Integer({ minimum: 60, default: 7 * 24 * 3600 }),
  CDP_IDENTITY_MAX_IDS: Type.Integer({ minimum: 2, maximum: 10_000, default: 100 }),
  /** Traits a client (browser/mobile) key never changes on a known person (comma-separated). */
  CDP_IDENTITY_PROTECTED_TRAITS: Type.String({
    pattern: '^([^,\\s]{1,128}(,[^,\\s]{1,128})*)?$',
    default: 'email,phone,pushToken',
  }),
  /** What client keys may change on a known person, unless a workspace setting says otherwise. */
  CDP_CLIENT_KEYS: Type.Union([Type.Literal('restricted'), Type.Literal('trusted')], {
    default: 'restricted',
  }),
  /** Traits per profile (count, and bytes of names and JSON values). */
  CDP_PROFILE_MAX_TRAITS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1000 }),
  CDP_PROFILE_MAX_TRAIT_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 512 * 1024 * 1024,
    default: 1024 * 1024,
  }),
  /** Extra identifier values treated as "no id" (comma-separated, case-insensitive). */
  CDP_IDENTITY_JUNK_IDS: Type.String({ default: '' }),
  /** context.externalIds types that identify a person (comma-separated), e.g. crm_id. */
  CDP_IDENTITY_EXTERNAL_ID_TYPES: Type.String({
    pattern: '^([a-z0-9_]{1,32}(,[a-z0-9_]{1,32})*)?$',
    default: '',
  }),
  /** Background poll of the definitions revision; batches check it themselves before use. */
  CDP_DEFINITIONS_POLL_MS: Type.Integer({ minimum: 10, maximum: 86_400_000, default: 250 }),
  CDP_HISTORY_FLUSH_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000 }),
  CDP_HISTORY_MAX_ROWS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 50_000 }),
  CDP_HISTORY_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 1024 ** 3, default: 64 * 1024 * 1024 }),
  CDP_HISTORY_MIN_ROWS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
  /** Inserts per table at once: one, as each insert parses and writes on several threads. */
  CDP_HISTORY_INSERTS: Type.Integer({ minimum: 1, maximum: 8, default: 2 }),
  CDP_ANALYTICS_MAX_RANGE_DAYS: Type.Integer({ minimum: 1, maximum: 3660, default: 400 }),
  CDP_ANALYTICS_TIMEOUT_S: Type.Integer({ minimum: 1, maximum: 3600, default: 30 }),
  CDP_ANALYTICS_MAX_ROWS: Type.Integer({ minimum: 10, maximum: 1_000_000, default: 10_000 }),
  /** Memory one analytics query may use (max_memory_usage). */
  CDP_ANALYTICS_MAX_MEMORY_BYTES: Type.Integer({
    minimum: 10_000_000,
    maximum: 1_000_000_000_000,
    default: 1_000_000_000,
  }),
  /** Analytics requests running at once per workspace in one query process (429 past it). */
  CDP_ANALYTICS_MAX_CONCURRENT: Type.Integer({ minimum: 1, maximum: 64, default: 2 }),
  /** Data exports: where their files are written (default <CDP_DATA_DIR>/exports) and kept how long. */
  CDP_EXPORTS_DIR: Type.Optional(Type.String({ minLength: 1 })),
  CDP_EXPORTS_TTL_HOURS: Type.Integer({ minimum: 1, maximum: 720, default: 24 }),
  /** Bulk imports: where uploads wait while imported (default <CDP_DATA_DIR>/imports), the largest taken. */
  CDP_IMPORTS_DIR: Type.Optional(Type.String({ minLength: 1 })),
  CDP_IMPORTS_MAX_MB: Type.Integer({ minimum: 1, maximum: 65_536, default: 1024 }),
  /** Bulk imports: uploads received at once per workspace by one query process (429 past it). */
  CDP_IMPORTS_MAX_UPLOADS: Type.Integer({ minimum: 1, maximum: 100, default: 2 }),
});
export type Env = Static<typeof EnvSchema>;

/** Parse and validate an environment; unknown variables are ignored, bad ones named. */
export function parseEnv<T extends TObject>(schema: T, raw: Record<string, string | undefined>): Static<T> {
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const v = raw[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const withDefaults = Value.Default(schema, picked) as Record<string, unknown>;
  const converted = Value.Convert(schema, withDefaults);
  const problems: string[] = [];
  for (const e of Value.Errors(schema, converted)) {
    const name = e.path.replace(/^\//, '');
    const given = (raw as Record<string, unknown>)[name];
    problems.push(`${name}: ${e.message}${given === undefined ? '' : ` (got ${JSON.stringify(given)})`}`);
  }
  if (problems.length > 0) throw new ConfigError(dedupe(problems));
  return converted as Static<T>;
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}

export interface KafkaConfig {
  brokers: string[];
  driver: 'kafkajs' | 'rdkafka';
  clientId: string;
  topicPrefix: string;
  partitions: number;
  /** Unset: min(3, brokers); see runtime/kafka/topic-durability.ts. */
  replication?: number;
  /** Unset: replication − 1, at least 1. */
  minInsync?: number;
}
export type RedisDurabilityMode = 'none' | 'waitaof' | 'appendfsync-always';
export interface RedisConfig {
  url: string;
  prefix: string;
  durability: RedisDurabilityMode;
  waitaofTimeoutMs: number;
}
export type ClickHouseConfig =
  | { kind: 'server'; url: string; user: string; password: string; database: string }
  | { kind: 'chdb'; path: string };

export interface Keys {
  workspace: string;
  writeKey: string;
  adminKey: string;
}

/** `restricted`: client keys cannot take over or rewrite known people; `trusted`: like server keys. */
export type ClientKeysMode = 'restricted' | 'trusted';

export interface ProfileLimits {
  maxTraits: number;
  maxTraitBytes: number;
}

export interface ChannelsConfig {
  timeoutMs: number;
  /** Keys of per-workspace credentials (CDP_SECRETS_KEY, CDP_SECRETS_KEY_PREVIOUS) and their poll. */
  secrets: Keyring;
  credentialsPollMs: number;
  email: {
    smtpUrl?: string;
    from: string;
    provider: 'smtp' | 'ses' | 'sendgrid' | 'postmark';
    ses: {
      region: string;
      accessKeyId: string;
      secretAccessKey: string;
      sessionToken: string;
      endpoint?: string;
      /** SNS topics the SES event webhook takes (ingest/email-webhooks.ts); empty: none. */
      snsTopicArns?: string[];
      /** Testing only: the SNS certificate origin instead of sns.<region>.amazonaws.com. */
      snsEndpoint?: string;
    };
    sendgrid: { apiKey: string; baseUrl: string; webhookPublicKey?: string };
    postmark: {
      serverToken: string;
      baseUrl: string;
      messageStream: string;
      webhookUser?: string;
      webhookPassword?: string;
    };
    /** Provider webhook events per address per minute (ingest/email-webhooks.ts); 0 unlimited. */
    webhookRatePerMinute?: number;
    /** Resend delays (s) of soft-bounced campaign emails (activation/soft-bounce-resend.ts). */
    softBounceResendsS?: number[];
  };
  sms: {
    baseUrl: string;
    accountSid: string;
    authToken: string;
    from: string;
    helpText: string;
    webhookRatePerMinute: number;
    /** CDP_INGEST_PUBLIC_URL when set (and an auth token): sends ask for status callbacks there. */
    statusCallbackBase: string;
    /** CDP_INGEST_PUBLIC_URL for sends with a workspace's own Twilio account (its token checks them). */
    workspaceCallbackBase?: string;
  };
  push: {
    provider: 'fcm' | 'apns';
    baseUrl: string;
    project: string;
    token: string;
    serviceAccount?: string;
    apns: { url: string; teamId: string; keyId: string; key: string; topic: string };
  };
}

export interface ContactPolicyConfig {
  /** Sends per profile per channel per day (0: no cap). */
  capPerChannelPerDay: number;
  /** Sends per profile per day across channels (0: no cap). */
  capPerDay: number;
  /** Local times (profile's timezone) when nothing is sent, e.g. 21:00 to 08:00. */
  quietHours?: { start: string; end: string };
  defaultTimezone: string;
}

export interface RetryConfig {
  maxAttempts: number;
  baseMs: number;
  maxMs: number;
  claimLeaseMs: number;
  concurrency: number;
}

export interface Config {
  env: Env['NODE_ENV'];
  logLevel: Env['LOG_LEVEL'];
  dataDir: string;
  kafka: KafkaConfig;
  redis: RedisConfig;
  clickhouse: ClickHouseConfig;
  keys: Keys;
  ingest: {
    host: string;
    port: number;
    produceTimeoutMs: number;
    lingerMs: number;
    /** `cdp start`: ingest processes sharing the port (node:cluster), for more than one core. */
    workers: number;
    rateLimit: number;
    rateBurst: number;
    /** The hot-key lane (CDP_HOT_KEY_RATE / _BURST): events per second per person before overflow; 0 off. */
    hotKeyRate: number;
    hotKeyBurst: number;
    /** Event times accepted: from maxPastMs before to maxFutureMs after the server's clock. */
    timeBounds: { maxPastMs: number; maxFutureMs: number };
    /** Where people reach the ingest host (CDP_INGEST_PUBLIC_URL): double opt-in links. */
    publicUrl: string;
    /** CDP_INGEST_PUBLIC_URL only when set: the browser SDK settings' apiHost (unset: the request's Host). */
    configuredPublicUrl?: string;
  };
  forms: {
    secret: string;
    minFillMs: number;
    maxAgeMs: number;
    ipRatePerMinute: number;
    formRatePerMinute: number;
  };
  query: { host: string; port: number; adminAuthMaxFailures: number };
  /** The process's Prometheus listener (runtime/metrics.ts); undefined when off. */
  metrics?: { host: string; port: number };
  /** The BI SQL endpoint (CDP_BI_*): null when off. */
  bi: {
    host: string;
    port: number;
    limits: {
      maxExecutionSeconds: number;
      maxResultRows: number;
      maxResultBytes: number;
      maxMemoryBytes: number;
      maxConcurrent: number;
    };
  } | null;
  activation: { allowLoopback: boolean; allowPrivate: boolean; timeoutMs: number };
  processor: {
    dedupTtlSeconds: number;
    maxIdentities: number;
    junkIds: string[];
    externalIdTypes: string[];
    /** Traits a client key never changes on a known person (CDP_IDENTITY_PROTECTED_TRAITS). */
    protectedTraits: string[];
    /** Deployment default of the per-workspace client-key setting (CDP_CLIENT_KEYS). */
    clientKeys: ClientKeysMode;
  };
  /** Per-profile trait bounds: the processor refuses past them, ingest refuses one event over them. */
  profileLimits: ProfileLimits;
  channels: ChannelsConfig;
  contactPolicy: ContactPolicyConfig;
  unsubscribe: { secret: string; ttlDays: number; publicUrl: string };
  retries: RetryConfig;
  history: { flushMs: number; maxRows: number; maxBytes: number; minRows: number; inserts: number };
  definitions: { pollMs: number };
  analytics: {
    maxRangeDays: number;
    timeoutS: number;
    maxRows: number;
    maxMemoryBytes: number;
    maxConcurrent: number;
  };
  exports: { dir: string; ttlMs: number };
  imports: { dir: string; maxBytes: number; maxUploads: number };
}

/** The chosen email provider's credentials, named when missing (a send could never succeed). */
function emailProviderProblems(e: Env): string[] {
  const need = (names: Array<keyof Env>) =>
    names.filter((n) => !e[n]).map((n) => `${n}: required when CDP_EMAIL_PROVIDER=${e.CDP_EMAIL_PROVIDER}`);
  if (e.CDP_EMAIL_PROVIDER === 'ses')
    return need(['CDP_SES_REGION', 'CDP_SES_ACCESS_KEY_ID', 'CDP_SES_SECRET_ACCESS_KEY']);
  if (e.CDP_EMAIL_PROVIDER === 'sendgrid') return need(['CDP_SENDGRID_API_KEY']);
  if (e.CDP_EMAIL_PROVIDER === 'postmark') return need(['CDP_POSTMARK_SERVER_TOKEN']);
  return [];
}

/** Builds the typed configuration from an environment. Throws ConfigError naming each bad variable. */
export function loadConfig(raw: Record<string, string | undefined> = {}): Config {
  const e = parseEnv(EnvSchema, raw);
  const production = e.NODE_ENV === 'production';
  const missing: string[] = [];
  if (production && !e.CDP_WRITE_KEY) missing.push('CDP_WRITE_KEY: required when NODE_ENV=production');
  if (production && !e.CDP_ADMIN_KEY) missing.push('CDP_ADMIN_KEY: required when NODE_ENV=production');
  if (!validTimezone(e.CDP_DEFAULT_TIMEZONE))
    missing.push(
      `CDP_DEFAULT_TIMEZONE: not an IANA time zone (got ${JSON.stringify(e.CDP_DEFAULT_TIMEZONE)})`,
    );
  if (
    e.CDP_TOPIC_REPLICATION !== undefined &&
    e.CDP_TOPIC_MIN_INSYNC !== undefined &&
    e.CDP_TOPIC_MIN_INSYNC > e.CDP_TOPIC_REPLICATION
  )
    missing.push(
      `CDP_TOPIC_MIN_INSYNC: must be at most CDP_TOPIC_REPLICATION (got ${e.CDP_TOPIC_MIN_INSYNC} > ${e.CDP_TOPIC_REPLICATION})`,
    );
  if (production && !e.CLICKHOUSE_URL)
    missing.push('CLICKHOUSE_URL: required when NODE_ENV=production (chDB is the local default only)');
  missing.push(...emailProviderProblems(e));
  const secretKey = (name: 'CDP_SECRETS_KEY' | 'CDP_SECRETS_KEY_PREVIOUS'): SecretKey | undefined => {
    const v = e[name];
    if (v === undefined) return undefined;
    try {
      return parseSecretKey(v);
    } catch (err) {
      missing.push(`${name}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const secrets = keyring(secretKey('CDP_SECRETS_KEY'), secretKey('CDP_SECRETS_KEY_PREVIOUS'));
  if (e.CDP_SECRETS_KEY_PREVIOUS !== undefined && e.CDP_SECRETS_KEY === undefined)
    missing.push('CDP_SECRETS_KEY_PREVIOUS: set only with CDP_SECRETS_KEY (the key to rotate to)');
  missing.push(...exposureProblems(e), ...deadlineProblems(e));
  if (missing.length > 0) throw new ConfigError(missing);
  const dataDir = e.CDP_DATA_DIR;
  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    dataDir,
    kafka: {
      brokers: e.KAFKA_BROKERS.split(','),
      driver: e.CDP_KAFKA_DRIVER,
      clientId: 'cdp',
      topicPrefix: e.CDP_TOPIC_PREFIX,
      partitions: e.CDP_TOPIC_PARTITIONS,
      replication: e.CDP_TOPIC_REPLICATION,
      minInsync: e.CDP_TOPIC_MIN_INSYNC,
    },
    redis: {
      url: e.REDIS_URL,
      prefix: e.CDP_REDIS_PREFIX,
      durability: e.CDP_REDIS_DURABILITY,
      waitaofTimeoutMs: e.CDP_REDIS_WAITAOF_TIMEOUT_MS,
    },
    clickhouse: e.CLICKHOUSE_URL
      ? {
          kind: 'server',
          url: e.CLICKHOUSE_URL,
          user: e.CLICKHOUSE_USER,
          password: e.CLICKHOUSE_PASSWORD,
          database: e.CLICKHOUSE_DATABASE,
        }
      : { kind: 'chdb', path: `${dataDir}/chdb` },
    keys: {
      workspace: e.CDP_DEFAULT_WORKSPACE,
      writeKey: e.CDP_WRITE_KEY ?? DEV_WRITE_KEY,
      adminKey: e.CDP_ADMIN_KEY ?? DEV_ADMIN_KEY,
    },
    ingest: {
      host: e.CDP_INGEST_HOST,
      port: e.CDP_INGEST_PORT,
      produceTimeoutMs: e.CDP_INGEST_PRODUCE_TIMEOUT_MS,
      lingerMs: e.CDP_INGEST_LINGER_MS,
      workers: e.CDP_INGEST_WORKERS,
      rateLimit: e.CDP_INGEST_RATE_LIMIT,
      rateBurst: e.CDP_INGEST_RATE_BURST ?? Math.max(1000, 2 * e.CDP_INGEST_RATE_LIMIT),
      hotKeyRate: e.CDP_HOT_KEY_RATE,
      hotKeyBurst: e.CDP_HOT_KEY_BURST,
      timeBounds: {
        maxPastMs: e.CDP_INGEST_MAX_PAST_DAYS * 86_400_000,
        maxFutureMs: e.CDP_INGEST_MAX_FUTURE_HOURS * 3_600_000,
      },
      publicUrl: e.CDP_INGEST_PUBLIC_URL ?? `http://${e.CDP_INGEST_HOST}:${e.CDP_INGEST_PORT}`,
      ...(e.CDP_INGEST_PUBLIC_URL ? { configuredPublicUrl: e.CDP_INGEST_PUBLIC_URL } : {}),
    },
    forms: {
      // unset (local development only): derived from the admin key, as the unsubscribe secret
      secret:
        e.CDP_FORMS_SECRET ??
        createHmac('sha256', e.CDP_ADMIN_KEY ?? DEV_ADMIN_KEY)
          .update('cdp-forms')
          .digest('base64url'),
      minFillMs: e.CDP_FORMS_MIN_FILL_SECONDS * 1000,
      maxAgeMs: e.CDP_FORMS_MAX_AGE_HOURS * 3_600_000,
      ipRatePerMinute: e.CDP_FORMS_IP_RATE_PER_MINUTE,
      formRatePerMinute: e.CDP_FORMS_FORM_RATE_PER_MINUTE,
    },
    ...(e.CDP_METRICS_PORT !== undefined
      ? { metrics: { host: e.CDP_METRICS_HOST, port: e.CDP_METRICS_PORT } }
      : {}),
    query: {
      host: e.CDP_QUERY_HOST,
      port: e.CDP_QUERY_PORT,
      adminAuthMaxFailures: e.CDP_ADMIN_AUTH_MAX_FAILURES,
    },
    bi:
      e.CDP_BI_SQL === 'true'
        ? {
            host: e.CDP_BI_HOST ?? e.CDP_QUERY_HOST,
            port: e.CDP_BI_PORT ?? (e.CDP_QUERY_PORT === 0 ? 0 : 8123),
            limits: {
              maxExecutionSeconds: e.CDP_BI_MAX_EXECUTION_S,
              maxResultRows: e.CDP_BI_MAX_RESULT_ROWS,
              maxResultBytes: e.CDP_BI_MAX_RESULT_BYTES,
              maxMemoryBytes: e.CDP_BI_MAX_MEMORY_BYTES,
              maxConcurrent: e.CDP_BI_MAX_CONCURRENT,
            },
          }
        : null,
    activation: {
      // Loopback webhook destinations are for local development only (and refused above
      // when the service is exposed).
      allowLoopback:
        e.CDP_WEBHOOK_ALLOW_LOOPBACK === undefined ? !exposure(e) : e.CDP_WEBHOOK_ALLOW_LOOPBACK === 'true',
      allowPrivate: e.CDP_WEBHOOK_ALLOW_PRIVATE === 'true',
      timeoutMs: e.CDP_WEBHOOK_TIMEOUT_MS,
    },
    processor: {
      dedupTtlSeconds: e.CDP_DEDUP_TTL_SECONDS,
      maxIdentities: e.CDP_IDENTITY_MAX_IDS,
      junkIds: list(e.CDP_IDENTITY_JUNK_IDS).map((v) => v.toLowerCase()),
      externalIdTypes: list(e.CDP_IDENTITY_EXTERNAL_ID_TYPES),
      protectedTraits: list(e.CDP_IDENTITY_PROTECTED_TRAITS),
      clientKeys: e.CDP_CLIENT_KEYS,
    },
    profileLimits: { maxTraits: e.CDP_PROFILE_MAX_TRAITS, maxTraitBytes: e.CDP_PROFILE_MAX_TRAIT_BYTES },
    channels: {
      timeoutMs: e.CDP_CHANNEL_TIMEOUT_MS,
      secrets,
      credentialsPollMs: e.CDP_CHANNEL_CREDENTIALS_POLL_MS,
      email: {
        smtpUrl: e.SMTP_URL,
        from: e.CDP_EMAIL_FROM,
        provider: e.CDP_EMAIL_PROVIDER,
        ses: {
          region: e.CDP_SES_REGION,
          accessKeyId: e.CDP_SES_ACCESS_KEY_ID,
          secretAccessKey: e.CDP_SES_SECRET_ACCESS_KEY,
          sessionToken: e.CDP_SES_SESSION_TOKEN,
          endpoint: e.CDP_SES_ENDPOINT,
          snsTopicArns: list(e.CDP_SES_SNS_TOPIC_ARNS),
          snsEndpoint: e.CDP_SES_SNS_ENDPOINT,
        },
        sendgrid: {
          apiKey: e.CDP_SENDGRID_API_KEY,
          baseUrl: e.CDP_SENDGRID_BASE_URL,
          webhookPublicKey: e.CDP_SENDGRID_WEBHOOK_PUBLIC_KEY,
        },
        webhookRatePerMinute: e.CDP_EMAIL_WEBHOOK_RATE_PER_MINUTE,
        softBounceResendsS: list(e.CDP_EMAIL_SOFT_BOUNCE_RESENDS).map(Number),
        postmark: {
          serverToken: e.CDP_POSTMARK_SERVER_TOKEN,
          baseUrl: e.CDP_POSTMARK_BASE_URL,
          messageStream: e.CDP_POSTMARK_MESSAGE_STREAM,
          webhookUser: e.CDP_POSTMARK_WEBHOOK_USER,
          webhookPassword: e.CDP_POSTMARK_WEBHOOK_PASSWORD,
        },
      },
      sms: {
        baseUrl: e.CDP_SMS_BASE_URL,
        accountSid: e.CDP_SMS_ACCOUNT_SID,
        authToken: e.CDP_SMS_AUTH_TOKEN,
        from: e.CDP_SMS_FROM,
        helpText: e.CDP_SMS_HELP_TEXT,
        webhookRatePerMinute: e.CDP_SMS_WEBHOOK_RATE_PER_MINUTE,
        // only an address set on purpose: Twilio cannot reach the host:port default
        statusCallbackBase: e.CDP_SMS_AUTH_TOKEN && e.CDP_INGEST_PUBLIC_URL ? e.CDP_INGEST_PUBLIC_URL : '',
        workspaceCallbackBase: e.CDP_INGEST_PUBLIC_URL ?? '',
      },
      push: {
        provider: e.CDP_PUSH_PROVIDER,
        baseUrl: e.CDP_PUSH_BASE_URL,
        project: e.CDP_PUSH_PROJECT,
        token: e.CDP_PUSH_TOKEN,
        serviceAccount: e.CDP_PUSH_FCM_SERVICE_ACCOUNT,
        apns: {
          url: e.CDP_PUSH_APNS_URL,
          teamId: e.CDP_PUSH_APNS_TEAM_ID,
          keyId: e.CDP_PUSH_APNS_KEY_ID,
          key: e.CDP_PUSH_APNS_KEY,
          topic: e.CDP_PUSH_APNS_TOPIC,
        },
      },
    },
    contactPolicy: {
      capPerChannelPerDay: e.CDP_CAP_PER_CHANNEL_PER_DAY,
      capPerDay: e.CDP_CAP_PER_DAY,
      quietHours: e.CDP_QUIET_HOURS
        ? { start: e.CDP_QUIET_HOURS.slice(0, 5), end: e.CDP_QUIET_HOURS.slice(6) }
        : undefined,
      defaultTimezone: e.CDP_DEFAULT_TIMEZONE,
    },
    unsubscribe: {
      // unset (local development only; required when exposed): derived from the admin key
      secret:
        e.CDP_UNSUBSCRIBE_SECRET ??
        createHmac('sha256', e.CDP_ADMIN_KEY ?? DEV_ADMIN_KEY)
          .update('cdp-unsubscribe')
          .digest('base64url'),
      ttlDays: e.CDP_UNSUBSCRIBE_TTL_DAYS,
      publicUrl: e.CDP_PUBLIC_URL ?? `http://${e.CDP_QUERY_HOST}:${e.CDP_QUERY_PORT}`,
    },
    retries: {
      maxAttempts: e.CDP_ACTIVATION_MAX_ATTEMPTS,
      baseMs: e.CDP_ACTIVATION_RETRY_BASE_MS,
      maxMs: e.CDP_ACTIVATION_RETRY_MAX_MS,
      claimLeaseMs: e.CDP_ACTIVATION_CLAIM_LEASE_MS,
      concurrency: e.CDP_ACTIVATION_CONCURRENCY,
    },
    history: {
      flushMs: e.CDP_HISTORY_FLUSH_MS,
      maxRows: e.CDP_HISTORY_MAX_ROWS,
      maxBytes: e.CDP_HISTORY_MAX_BYTES,
      minRows: e.CDP_HISTORY_MIN_ROWS,
      inserts: e.CDP_HISTORY_INSERTS,
    },
    definitions: { pollMs: e.CDP_DEFINITIONS_POLL_MS },
    exports: { dir: e.CDP_EXPORTS_DIR ?? `${dataDir}/exports`, ttlMs: e.CDP_EXPORTS_TTL_HOURS * 3_600_000 },
    imports: {
      dir: e.CDP_IMPORTS_DIR ?? `${dataDir}/imports`,
      maxBytes: e.CDP_IMPORTS_MAX_MB * 1024 * 1024,
      maxUploads: e.CDP_IMPORTS_MAX_UPLOADS,
    },
    analytics: {
      maxRangeDays: e.CDP_ANALYTICS_MAX_RANGE_DAYS,
      timeoutS: e.CDP_ANALYTICS_TIMEOUT_S,
      maxRows: e.CDP_ANALYTICS_MAX_ROWS,
      maxMemoryBytes: e.CDP_ANALYTICS_MAX_MEMORY_BYTES,
      maxConcurrent: e.CDP_ANALYTICS_MAX_CONCURRENT,
    },
  };
}

const list = (v: string) =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
