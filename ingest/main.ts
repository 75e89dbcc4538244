// Composition root of the ingest service.
import { DEFAULT_SOFT_BOUNCE_RESEND_DELAYS_S, softBounceResender } from '../activation/soft-bounce-resend.ts';
import { ChannelCredentialStore } from '../runtime/channel-credentials.ts';
import type { Clients } from '../runtime/clients.ts';
import type { Config } from '../runtime/config.ts';
import { DefinitionStore, watchDefinitions } from '../runtime/definitions.ts';
import { listen, mountHealth } from '../runtime/http.ts';
import type { Logger } from '../runtime/log.ts';
import type { RunningService } from '../runtime/service.ts';
import { WriteKeyStore, watchWriteKeys } from '../runtime/write-keys.ts';
import { confirmSecret } from '../schemas/double-opt-in.ts';
import { emailTagSecret } from '../schemas/email-tags.ts';
import { trackingSecret } from '../schemas/email-tracking-token.ts';
import type { FormDefinition } from '../schemas/form.ts';
import { globalKeys } from '../schemas/redis-keys.ts';
import { topics } from '../schemas/topics.ts';
import { createIngestApp } from './app.ts';
import type { FormDeps } from './forms.ts';
import { watchPages } from './pages.ts';
import { RateLimiter } from './rate-limit.ts';
import { watchTrackingPlans } from './tracking-plan.ts';

export async function startIngest(cfg: Config, clients: Clients, log: Logger): Promise<RunningService> {
  const kafka = clients.kafka();
  const producer = kafka.producer({ lingerMs: cfg.ingest.lingerMs });
  const admin = kafka.admin();
  const t = topics(cfg.kafka.topicPrefix);
  const mail = cfg.channels.email;
  const resends = softBounceResender({
    redis: clients.redis(),
    redisPrefix: cfg.redis.prefix,
    delaysS: mail.softBounceResendsS ?? DEFAULT_SOFT_BOUNCE_RESEND_DELAYS_S,
  });
  const writeKeyStore = new WriteKeyStore(clients.redis(), cfg.redis.prefix);
  const credentials = new ChannelCredentialStore(clients.redis(), cfg.redis.prefix, cfg.channels.secrets);
  const writeKeys = watchWriteKeys({
    store: writeKeyStore,
    bootstrap: new Map([[cfg.keys.writeKey, cfg.keys.workspace]]),
    log,
  });
  const forms = watchForms(cfg, clients, log);
  const plans = watchTrackingPlans({
    store: new DefinitionStore(clients.redis(), cfg.redis.prefix),
    log: log.child({ area: 'tracking-plans' }),
    intervalMs: cfg.definitions.pollMs,
  });
  const formDeps: FormDeps = {
    forms,
    producer,
    eventsTopic: t.events,
    queueConsent: async (p) => {
      // tried at once; the query service retries until the profile exists
      await clients.redis().zadd(globalKeys(cfg.redis.prefix).formConsentDue, Date.now(), JSON.stringify(p));
    },
    log: log.child({ area: 'forms' }),
    now: () => new Date(),
    secret: cfg.forms.secret,
    minFillMs: cfg.forms.minFillMs,
    maxAgeMs: cfg.forms.maxAgeMs,
    ipLimiter: perMinute(cfg.forms.ipRatePerMinute),
    formLimiter: perMinute(cfg.forms.formRatePerMinute),
    produceTimeoutMs: cfg.ingest.produceTimeoutMs,
    timeBounds: cfg.ingest.timeBounds,
    traitLimits: cfg.profileLimits,
  };
  const pages = watchPages(
    new DefinitionStore(clients.redis(), cfg.redis.prefix),
    log,
    cfg.definitions.pollMs,
  );
  const app = createIngestApp({
    producer,
    eventsTopic: t.events,
    resolveWriteKey: writeKeys.resolve,
    log,
    produceTimeoutMs: cfg.ingest.produceTimeoutMs,
    rateLimiter: new RateLimiter(cfg.ingest.rateLimit, cfg.ingest.rateBurst),
    // a person's flood beyond this goes to the overflow lane (bounded memory: full buckets go first)
    ...(cfg.ingest.hotKeyRate > 0
      ? {
          hotKeys: {
            limiter: new RateLimiter(cfg.ingest.hotKeyRate, cfg.ingest.hotKeyBurst, undefined, 200_000),
            overflowTopic: t.eventsOverflow,
          },
        }
      : {}),
    timeBounds: cfg.ingest.timeBounds,
    traitLimits: cfg.profileLimits,
    // the browser SDK settings point here, never at a request's Host (unset: local development)
    publicUrl: cfg.ingest.configuredPublicUrl,
    forms: formDeps,
    trackingPlans: { plans, quarantineTopic: t.quarantine },
    pages: {
      pages,
      producer,
      eventsTopic: t.events,
      log: log.child({ area: 'pages' }),
      now: () => new Date(),
      secret: cfg.forms.secret,
      produceTimeoutMs: cfg.ingest.produceTimeoutMs,
      timeBounds: cfg.ingest.timeBounds,
    },
    emailWebhooks: {
      producer,
      eventsTopic: t.events,
      redis: clients.redis(),
      redisPrefix: cfg.redis.prefix,
      log: log.child({ area: 'email-webhooks' }),
      now: () => new Date(),
      produceTimeoutMs: cfg.ingest.produceTimeoutMs,
      timeBounds: cfg.ingest.timeBounds,
      sendgridPublicKey: mail.sendgrid.webhookPublicKey || undefined,
      postmark:
        mail.postmark.webhookUser && mail.postmark.webhookPassword
          ? { user: mail.postmark.webhookUser, password: mail.postmark.webhookPassword }
          : undefined,
      workspaceExists: async (ws) =>
        ws === cfg.keys.workspace ||
        (await new WriteKeyStore(clients.redis(), cfg.redis.prefix).list(ws)).some((r) => !r.revokedAt),
      addressLimiter: perMinute(mail.webhookRatePerMinute ?? 60),
      ses: mail.ses.snsTopicArns?.length
        ? { topicArns: mail.ses.snsTopicArns, endpoint: mail.ses.snsEndpoint }
        : undefined,
      // bounces, complaints and deliveries of our sends become activation ledger rows: those
      // whose tags activation signed for the URL's workspace (schemas/email-tags.ts)
      ledgerTopic: t.activationLedger,
      tagSecret: emailTagSecret(cfg.unsubscribe.secret),
      // a soft-bounced campaign email is sent again later (activation/soft-bounce-resend.ts)
      onSoftBounce: async (ev) => {
        const d = await resends.schedule(ev);
        if (d.kind !== 'untracked') log.info({ provider: ev.provider, ...d }, 'soft_bounce_resend');
      },
    },
    consentConfirm: {
      redis: clients.redis(),
      redisPrefix: cfg.redis.prefix,
      secret: confirmSecret(cfg.unsubscribe.secret),
      log: log.child({ area: 'consent-confirm' }),
      now: () => new Date(),
    },
    emailTracking: {
      producer,
      eventsTopic: t.events,
      redis: clients.redis(),
      redisPrefix: cfg.redis.prefix,
      secret: trackingSecret(cfg.unsubscribe.secret),
      log: log.child({ area: 'email-tracking' }),
      now: () => new Date(),
      produceTimeoutMs: cfg.ingest.produceTimeoutMs,
      timeBounds: cfg.ingest.timeBounds,
    },
    smsWebhooks: {
      redis: clients.redis(),
      redisPrefix: cfg.redis.prefix,
      authToken: cfg.channels.sms.authToken,
      // callbacks of a workspace's own Twilio account are signed with its token
      workspaceAuthToken: async (ws) => {
        const stored = await credentials.get(ws, 'sms');
        return stored?.readable && stored.credentials.channel === 'sms'
          ? stored.credentials.creds.authToken
          : undefined;
      },
      publicUrl: cfg.ingest.publicUrl,
      helpText: cfg.channels.sms.helpText,
      workspaceKnown: async (ws) =>
        ws === cfg.keys.workspace || (await writeKeyStore.list(ws)).some((r) => !r.revokedAt),
      limiter: perMinute(cfg.channels.sms.webhookRatePerMinute),
      log: log.child({ area: 'sms-webhooks' }),
      now: () => new Date(),
    },
  });
  mountHealth(app, { kafka: () => admin.ping() }, 2000, log);
  const server = await listen(app, cfg.ingest.host, cfg.ingest.port);
  // connect eagerly so the first request does not pay for it; failures are retried on send
  producer.connect().catch((err) => log.warn({ err: err.message }, 'producer_connect_failed'));
  const url = `http://${cfg.ingest.host}:${server.port}`;
  log.info({ url }, 'ingest_listening');
  return {
    name: 'ingest',
    url,
    async stop() {
      await server.close(); // stop accepting; in-flight requests finish their produce
      writeKeys.stop();
      forms.stop();
      plans.stop();
      pages.stop();
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}

/** A limiter of `n` per minute, in a burst of up to `n`; none for 0. */
function perMinute(n: number): RateLimiter | undefined {
  return n > 0 ? new RateLimiter(n / 60, n, undefined, 100_000) : undefined;
}

/** The forms of every workspace, reloaded when the definition store's revision moves. */
function watchForms(cfg: Config, clients: Clients, log: Logger) {
  const store = new DefinitionStore(clients.redis(), cfg.redis.prefix);
  let byKey = new Map<string, FormDefinition>();
  const watch = watchDefinitions({
    store,
    log,
    intervalMs: cfg.definitions.pollMs,
    load: async () => {
      const next = new Map<string, FormDefinition>();
      for (const f of await store.list('forms')) next.set(`${f.workspaceId}/${f.id}`, f);
      byKey = next;
    },
  });
  return {
    get: (ws: string, id: string) => byKey.get(`${ws}/${id}`),
    refresh: () => watch.current(),
    stop: () => watch.stop(),
  };
}
