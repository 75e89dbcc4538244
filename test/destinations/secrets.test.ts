// Destination secrets on the real Redis, Kafka and chDB: a webhook's signing secret and a
// built-in's token are write-only (GET, the list, every answer and every audit row show
// `secretSet` / a keyed fingerprint / `credentialsSet`, never the value; a secret the server
// generated is shown once, in the answer that made it); both are sealed at rest with
// CDP_SECRETS_KEY; and `cdp secrets rotate` re-seals them (and seals a signing secret stored in
// clear) so that, the previous key gone, a HubSpot destination and a webhook still deliver.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, type Producer as KafkaProducer, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../activation/webhook/sign-webhook.ts';
import { type RunningDestinations, startDestinations } from '../../destinations/main.ts';
import { reencryptDestinationCredentials } from '../../destinations/rotate-credentials.ts';
import { createQueryApp } from '../../query/app.ts';
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import type { Logger } from '../../runtime/log.ts';
import { keyring, open, parseSecretKey, seal } from '../../runtime/secrets-key.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import {
  type DestinationDefinition,
  destinationAad,
  destinationSecretAad,
  generateDestinationSecret,
  signingSecretOf,
} from '../../schemas/destination.ts';
import { migrate } from '../../schemas/migrations.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, readTopic, testConfig, testLogger, uniqueId } from '../harness.ts';
import { hubspotServer } from '../hubspot.ts';
import { produceEvents, receiver } from './peers.ts';

const run = promisify(execFile);
const K1 = randomBytes(32).toString('base64');
const K2 = randomBytes(32).toString('hex');

let cfg: Config;
let clients: Clients;
let ch: ClickHouseClient;
let log: Logger;
let app: ReturnType<typeof createQueryApp>;
let defs: DefinitionStore;
let producer: KafkaProducer;
const closers: Array<() => Promise<unknown>> = [];

const api = async (method: string, path: string, body?: unknown) => {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  return { status: res.status, text, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
};

const webhook = (over: Record<string, unknown> = {}) => ({
  name: 'hook',
  type: 'http',
  source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Never'] } },
  http: { url: 'https://hooks.example.com/cdp' },
  ...over,
});

beforeAll(async () => {
  cfg = testConfig({ CDP_WEBHOOK_ALLOW_LOOPBACK: 'true', CDP_SECRETS_KEY: K1 });
  log = testLogger(cfg);
  clients = createClients(cfg, log);
  ch = await clients.clickhouse();
  await migrate(ch);
  defs = new DefinitionStore(clients.redis(), cfg.redis.prefix);
  const t = topics(cfg.kafka.topicPrefix);
  const admin = clients.kafka().admin();
  await admin.ensureTopics([
    { topic: t.events, partitions: 2 },
    { topic: t.eventsOverflow, partitions: 2 },
    { topic: t.segmentChanges, partitions: 2 },
    { topic: t.activationLedger, partitions: 2 },
    { topic: t.deadLetter, partitions: 1 },
  ]);
  await admin.disconnect();
  app = createQueryApp({
    redis: clients.redis(),
    clickhouse: ch,
    defs,
    writeKeys: new WriteKeyStore(clients.redis(), cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => (k === cfg.keys.adminKey ? cfg.keys.workspace : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    destinationAddressPolicy: { allowLoopback: true, allowPrivate: false },
    secrets: cfg.channels.secrets,
    log,
    now: () => new Date(),
  });
  producer = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
}, 120_000);

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await producer?.disconnect();
  await clients?.close();
});

describe('destination secrets are write-only', () => {
  it('never answers or audits a webhook secret or a built-in token; a generated secret is shown once', async () => {
    const s1 = generateDestinationSecret();
    const s2 = generateDestinationSecret();
    const token = `pat-na1-${randomBytes(16).toString('hex')}`;
    const secrets = [s1, s2, token];
    const noSecretIn = (text: string) => {
      for (const s of secrets) expect(text).not.toContain(s);
      // nor the base64 inside a whsec_ (what a careless encoder might print)
      for (const s of [s1, s2]) expect(text).not.toContain(s.slice('whsec_'.length));
    };

    // given: never echoed, a keyed fingerprint instead
    const given = await api(
      'POST',
      '/v1/destinations',
      webhook({ http: { url: 'https://hooks.example.com/a', secret: s1 } }),
    );
    expect(given.status, given.text).toBe(201);
    noSecretIn(given.text);
    expect(given.body.http.secret).toBeUndefined();
    expect(given.body.http.secretSet).toBe(true);
    expect(given.body.http.secretFingerprint).toMatch(/^hmac:[0-9a-f]{12}$/);
    const fp1 = given.body.http.secretFingerprint as string;

    // generated: shown in the 201 only
    const gen = await api('POST', '/v1/destinations', webhook());
    expect(gen.status, gen.text).toBe(201);
    const generated = gen.body.http.secret as string;
    expect(generated).toMatch(/^whsec_/);
    secrets.push(generated);
    const genGet = await api('GET', `/v1/destinations/${gen.body.id}`);
    expect(genGet.body.http.secret).toBeUndefined();
    expect(genGet.body.http.secretSet).toBe(true);
    noSecretIn(genGet.text);

    // GET one, the list, a PUT that keeps it, a PUT that replaces it, pause and resume
    const one = await api('GET', `/v1/destinations/${given.body.id}`);
    noSecretIn(one.text);
    expect(one.body.http.secretFingerprint).toBe(fp1);
    const list = await api('GET', '/v1/destinations');
    expect(list.body.destinations.length).toBeGreaterThanOrEqual(2);
    noSecretIn(list.text);
    const kept = await api(
      'PUT',
      `/v1/destinations/${given.body.id}`,
      webhook({ name: 'hook 2', http: { url: 'https://hooks.example.com/a' } }),
    );
    expect(kept.status, kept.text).toBe(200);
    noSecretIn(kept.text);
    expect(kept.body.http.secretFingerprint).toBe(fp1);
    // sealed at rest: the definition in Redis holds no secret in clear
    const atRest = (await defs.get('destinations', cfg.keys.workspace, given.body.id))!;
    expect(atRest.http.secret).toBe('');
    expect(atRest.http.sealedSecret?.kid).toBe(parseSecretKey(K1).id);
    expect(signingSecretOf(cfg.channels.secrets, atRest)).toBe(s1);
    noSecretIn(JSON.stringify(atRest));
    secrets.push(atRest.http.sealedSecret!.ct);
    const replaced = await api(
      'PUT',
      `/v1/destinations/${given.body.id}`,
      webhook({ http: { url: 'https://hooks.example.com/a', secret: s2 } }),
    );
    expect(replaced.status, replaced.text).toBe(200);
    noSecretIn(replaced.text);
    expect(replaced.body.http.secretFingerprint).not.toBe(fp1);
    const atRest2 = (await defs.get('destinations', cfg.keys.workspace, given.body.id))!;
    expect(signingSecretOf(cfg.channels.secrets, atRest2)).toBe(s2);
    noSecretIn(JSON.stringify(atRest2));
    secrets.push(atRest2.http.sealedSecret!.ct);
    noSecretIn((await api('POST', `/v1/destinations/${given.body.id}/pause`)).text);
    noSecretIn((await api('POST', `/v1/destinations/${given.body.id}/pause`)).text);
    noSecretIn((await api('POST', `/v1/destinations/${given.body.id}/resume`)).text);
    // a wrong body is a 400 that does not echo the secret either
    const bad = await api('POST', '/v1/destinations', webhook({ http: { url: 'not a url', secret: s1 } }));
    expect(bad.status).toBe(400);
    noSecretIn(bad.text);

    // a built-in: its token never, and no signing secret at all in its view
    const hub = await api('POST', '/v1/destinations', {
      name: 'crm',
      type: 'hubspot',
      source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Never'] } },
      http: { url: 'http://127.0.0.1:1' },
      hubspot: { token },
    });
    expect(hub.status, hub.text).toBe(201);
    noSecretIn(hub.text);
    expect(hub.body.credentialsSet).toBe(true);
    expect(hub.body.http).toEqual({ url: 'http://127.0.0.1:1' });
    const stored = await defs.get('destinations', cfg.keys.workspace, hub.body.id);
    // a built-in is not signed: no signing secret stored at all
    expect(stored!.http.secret).toBe('');
    expect(stored!.http.sealedSecret).toBeUndefined();
    secrets.push(stored!.credentials!.ct);
    noSecretIn((await api('GET', `/v1/destinations/${hub.body.id}`)).text);
    noSecretIn((await api('GET', '/v1/destinations')).text);
    // becoming a webhook: the built-in's unseen secret is not kept, a new one is shown once
    const becameHook = await api('PUT', `/v1/destinations/${hub.body.id}`, webhook());
    expect(becameHook.status, becameHook.text).toBe(200);
    expect(becameHook.body.http.secret).toMatch(/^whsec_/);
    expect(becameHook.body.http.secretSet).toBe(true);
    expect(becameHook.body.credentialsSet).toBeUndefined();
    secrets.push(becameHook.body.http.secret);
    noSecretIn((await api('GET', `/v1/destinations/${hub.body.id}`)).text);

    // the audit log, through the API and as stored in ClickHouse
    const ids = [given.body.id, gen.body.id, hub.body.id] as string[];
    const rows = await eventually('audit rows', async () => {
      const rs = await ch.query({
        query: `SELECT entity_id, action, before, after FROM audit_log
                WHERE workspace_id = {ws:String} AND entity_type = 'destination' AND entity_id IN {ids:Array(String)}`,
        query_params: { ws: cfg.keys.workspace, ids },
        format: 'JSONEachRow',
      });
      const got = await rs.json<Record<string, string>>();
      // given: create, 2 updates, pause, resume; gen: create; hub: create, update
      return got.length >= 8 ? got : undefined;
    });
    noSecretIn(JSON.stringify(rows));
    expect(JSON.stringify(rows)).not.toContain('[redacted]');
    const afterOf = (id: string, pred: (a: Record<string, unknown>) => boolean) =>
      rows
        .filter((r) => r.entity_id === id && r.after)
        .map((r) => JSON.parse(r.after!) as Record<string, unknown>)
        .find(pred);
    expect(afterOf(given.body.id, (a) => a.secretReplaced === true)).toBeDefined();
    expect(
      afterOf(given.body.id, (a) => (a.http as { secretFingerprint?: string }).secretFingerprint === fp1),
    ).toBeDefined();
    expect(afterOf(hub.body.id, (a) => a.credentialsSet === true)).toBeDefined();
    for (const id of ids) {
      const viaApi = await api('GET', `/v1/audit?entityType=destination&entityId=${id}`);
      expect(viaApi.status).toBe(200);
      expect(viaApi.body.items.length).toBeGreaterThanOrEqual(1);
      noSecretIn(viaApi.text);
    }
    for (const id of ids) expect((await api('DELETE', `/v1/destinations/${id}`)).status).toBe(204);
  });
});

describe('cdp secrets rotate', () => {
  it('a stored token goes only to the URL it was given with: a changed URL needs the token again', async () => {
    const cases = [
      { type: 'hubspot', extra: (token?: string) => ({ hubspot: token ? { token } : {} }) },
      {
        type: 'salesforce',
        extra: (token?: string) => ({
          salesforce: { externalIdField: 'Cdp_Id__c', ...(token ? { token } : {}) },
        }),
      },
    ];
    for (const { type, extra } of cases) {
      const token = `tok-${randomBytes(12).toString('hex')}`;
      const body = (url: string, t?: string) => ({
        name: 'crm',
        type,
        source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Never'] } },
        http: { url },
        ...extra(t),
      });
      const made = await api('POST', '/v1/destinations', body('http://127.0.0.1:1', token));
      expect(made.status, made.text).toBe(201);
      const id = made.body.id as string;
      const sealed = (await defs.get('destinations', cfg.keys.workspace, id))!.credentials;
      expect(sealed).toBeDefined();

      // the same endpoint (spelled differently) keeps the token
      const same = await api('PUT', `/v1/destinations/${id}`, body('HTTP://127.0.0.1:1/'));
      expect(same.status, same.text).toBe(200);
      expect((await defs.get('destinations', cfg.keys.workspace, id))!.credentials).toEqual(sealed);

      // another host, port or path without the token: 400 naming the field, nothing changed
      for (const url of ['http://127.0.0.1:2', 'http://127.0.0.1:1/elsewhere', 'https://attacker.example']) {
        const moved = await api('PUT', `/v1/destinations/${id}`, body(url));
        expect(moved.status, `${type} ${url}: ${moved.text}`).toBe(400);
        expect(moved.body.error).toMatch(new RegExp(`^${type}\\.token: required when http\\.url changes`));
        expect(moved.text).not.toContain(token);
        const kept = (await defs.get('destinations', cfg.keys.workspace, id))!;
        expect(kept.http.url).toBe('HTTP://127.0.0.1:1/');
        expect(kept.credentials).toEqual(sealed);
        expect(kept.version).toBe(2);
      }

      // with a token, the move is allowed and the credentials are replaced (and audited as such)
      const token2 = `tok-${randomBytes(12).toString('hex')}`;
      const moved = await api('PUT', `/v1/destinations/${id}`, body('http://127.0.0.1:2', token2));
      expect(moved.status, moved.text).toBe(200);
      const after = (await defs.get('destinations', cfg.keys.workspace, id))!;
      expect(after.credentials).not.toEqual(sealed);
      expect(
        JSON.parse(open(cfg.channels.secrets!, after.credentials!, destinationAad(cfg.keys.workspace, id)))
          .token,
      ).toBe(token2);
      const audited = await eventually('audit of the move', async () => {
        const rs = await ch.query({
          query: `SELECT after FROM audit_log WHERE workspace_id = {ws:String} AND entity_type = 'destination'
                  AND entity_id = {id:String} AND action = 'update'`,
          query_params: { ws: cfg.keys.workspace, id },
          format: 'JSONEachRow',
        });
        const got = (await rs.json<{ after: string }>()).map((r) => JSON.parse(r.after));
        return got.length >= 2 ? got : undefined;
      });
      expect(audited.filter((a) => a.credentialsReplaced === true).map((a) => a.http.url)).toEqual([
        'http://127.0.0.1:2',
      ]);
      expect(JSON.stringify(audited)).not.toContain(token2);
      expect((await api('DELETE', `/v1/destinations/${id}`)).status).toBe(204);
    }
  });

  it('re-seals tokens and signing secrets: with the new key alone a HubSpot destination and a webhook still deliver', async () => {
    const k1 = parseSecretKey(K1);
    const k2 = parseSecretKey(K2);
    const token = `pat-na1-${randomBytes(16).toString('hex')}`;
    const hs = await hubspotServer({ token });
    const hook = await receiver(200);
    closers.push(hs.close, hook.close);
    // the destinations service with K1
    let service: RunningDestinations = await startDestinations(cfg, clients, log, {
      options: { retryPollMs: 100 },
    });
    closers.push(() => service.stop());
    const source = { kind: 'events', filter: { '==': [{ var: 'event' }, 'Rotate Me'] } };
    const created = await api('POST', '/v1/destinations', {
      name: 'crm',
      type: 'hubspot',
      source,
      mapping: { email: 'properties.email', firstname: 'properties.name' },
      http: { url: hs.url },
      hubspot: { token },
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    const createdHook = await api('POST', '/v1/destinations', {
      name: 'hook',
      type: 'http',
      source,
      http: { url: hook.url },
    });
    expect(createdHook.status, createdHook.text).toBe(201);
    const hookId = createdHook.body.id as string;
    const hookSecret = createdHook.body.http.secret as string;
    for (const d of [id, hookId])
      await eventually('consuming', () => service.worker(d)?.started.then(() => true), 60_000);
    const send = (email: string) =>
      produceEvents(producer, topics(cfg.kafka.topicPrefix).events, cfg.keys.workspace, [
        { user: email, event: 'Rotate Me', properties: { email, name: 'R' } },
      ]);
    /** The webhook deliveries carrying this email, each checked against the secret shown at creation. */
    const signedHooks = (email: string) =>
      hook.arrivals.filter((a) => {
        if (!a.body.includes(email)) return false;
        expect(a.headers['webhook-signature']).toBe(
          signWebhook(hookSecret, a.id, Number(a.headers['webhook-timestamp']), a.body),
        );
        return true;
      });
    await send('before@example.com');
    await eventually('delivered with K1', () => hs.contacts.has('before@example.com'), 60_000);
    await eventually('signed with K1', () => signedHooks('before@example.com').length === 1, 60_000);
    const sealedBefore = (await defs.get('destinations', cfg.keys.workspace, id))!;
    const hookBefore = (await defs.get('destinations', cfg.keys.workspace, hookId))!;
    expect(sealedBefore.credentials!.kid).toBe(k1.id);
    expect(hookBefore.http.sealedSecret!.kid).toBe(k1.id);
    // the new key alone cannot open them yet (what the rotation is for)
    expect(() =>
      open(keyring(k2), sealedBefore.credentials!, destinationAad(cfg.keys.workspace, id)),
    ).toThrow(/neither CDP_SECRETS_KEY nor CDP_SECRETS_KEY_PREVIOUS/);
    expect(() => signingSecretOf(keyring(k2), hookBefore)).toThrow(/neither CDP_SECRETS_KEY/);
    // a destination whose token no key at hand opens: listed, left as it is, exit 1
    const lost: DestinationDefinition = {
      ...sealedBefore,
      id: 'dst_lost',
      credentials: seal(
        keyring(parseSecretKey(randomBytes(32).toString('base64'))),
        '{"token":"x"}',
        destinationAad(cfg.keys.workspace, 'dst_lost'),
      ),
      status: 'paused',
    };
    // a webhook saved before CDP_SECRETS_KEY was set: its secret in clear, to be sealed
    const clearSecret = generateDestinationSecret();
    const clear: DestinationDefinition = {
      ...hookBefore,
      id: 'dst_clear',
      http: { url: hook.url, secret: clearSecret },
      status: 'paused',
    };
    await defs.put('destinations', lost);
    await defs.put('destinations', clear);
    await service.stop();

    const env = {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      LOG_LEVEL: 'error',
      REDIS_URL: cfg.redis.url,
      CDP_REDIS_PREFIX: cfg.redis.prefix,
      CDP_SECRETS_KEY: K2,
      CDP_SECRETS_KEY_PREVIOUS: K1,
    };
    const cli = join(import.meta.dirname, '../../bin/cdp.js');
    const failed = await run(process.execPath, [cli, 'secrets', 'rotate'], { env, timeout: 60_000 }).then(
      () => undefined,
      (err: { code?: number; stdout?: string; stderr?: string }) => err,
    );
    expect(failed?.code).toBe(1);
    // the token, the webhook's sealed secret and the one in clear
    expect(failed?.stdout).toContain(
      `re-encrypted 3 destination secrets (tokens, webhook signing secrets) with key ${k2.id}; 0 already were`,
    );
    expect(failed?.stderr).toMatch(
      /unreadable, left as it is: workspace .* destination dst_lost: credentials unreadable/,
    );
    for (const text of [failed?.stdout, failed?.stderr]) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(hookSecret);
      expect(text).not.toContain(clearSecret);
    }
    const lostAfter = await defs.get('destinations', cfg.keys.workspace, 'dst_lost');
    expect(lostAfter?.credentials).toEqual(lost.credentials);
    await defs.remove('destinations', cfg.keys.workspace, 'dst_lost');
    const clearAfter = (await defs.get('destinations', cfg.keys.workspace, 'dst_clear'))!;
    expect(clearAfter.http.secret).toBe('');
    expect(clearAfter.http.sealedSecret!.kid).toBe(k2.id);
    expect(signingSecretOf(keyring(k2), clearAfter)).toBe(clearSecret);
    await defs.remove('destinations', cfg.keys.workspace, 'dst_clear');

    const sealedAfter = (await defs.get('destinations', cfg.keys.workspace, id))!;
    expect(sealedAfter.credentials!.kid).toBe(k2.id);
    expect(JSON.stringify(sealedAfter)).not.toContain(token);
    const hookAfter = (await defs.get('destinations', cfg.keys.workspace, hookId))!;
    expect(hookAfter.http.sealedSecret!.kid).toBe(k2.id);
    expect(JSON.stringify(hookAfter)).not.toContain(hookSecret);
    // the rest of the definitions as they were
    const { credentials: _a, ...restBefore } = sealedBefore;
    const { credentials: _b, ...restAfter } = sealedAfter;
    expect(restAfter).toEqual(restBefore);
    expect({ ...hookAfter, http: { ...hookAfter.http, sealedSecret: undefined } }).toEqual({
      ...hookBefore,
      http: { ...hookBefore.http, sealedSecret: undefined },
    });
    // running it again has nothing to do
    const again = await run(process.execPath, [cli, 'secrets', 'rotate'], {
      env: { ...env, CDP_SECRETS_KEY_PREVIOUS: '' },
      timeout: 60_000,
    });
    expect(again.stdout).toContain(
      `re-encrypted 0 destination secrets (tokens, webhook signing secrets) with key ${k2.id}; 2 already were`,
    );

    // the destinations service with K2 alone still opens the token and the secret, and delivers
    const onlyK2: Config = { ...cfg, channels: { ...cfg.channels, secrets: keyring(k2) } };
    service = await startDestinations(onlyK2, clients, log, { options: { retryPollMs: 100 } });
    for (const d of [id, hookId])
      await eventually('consuming with K2', () => service.worker(d)?.started.then(() => true), 60_000);
    await send('after@example.com');
    await eventually('delivered with K2 alone', () => hs.contacts.has('after@example.com'), 60_000);
    await eventually(
      'signed with the same secret, K2 alone',
      () => signedHooks('after@example.com').length === 1,
      60_000,
    );
    const last = hs.requests.at(-1)!;
    expect(last.status).toBe(200);
    expect(last.inputs.map((x) => x.id)).toContain('after@example.com');
    expect(hs.requests.every((r) => r.status === 200)).toBe(true);
    // stopped here, not at the end of the file: a service on K2 alone would also consume the
    // destinations the next cases create under K1 and write its own ledger rows for them
    await service.stop();
  }, 180_000);
});

describe('re-encrypting destination secrets', () => {
  it('leaves alone a definition changed between its read and its write (a PUT meanwhile)', async () => {
    const k1 = parseSecretKey(K1);
    const k2 = parseSecretKey(K2);
    const created = await api('POST', '/v1/destinations', webhook({ name: 'raced' }));
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    const underK1 = (await defs.get('destinations', cfg.keys.workspace, id))!;
    expect(underK1.http.sealedSecret!.kid).toBe(k1.id);
    // a PUT (by a query service already on K2) lands right after the rotation read the definitions
    const put: DestinationDefinition = {
      ...underK1,
      name: 'raced v2',
      version: underK1.version + 1,
      http: {
        ...underK1.http,
        sealedSecret: seal(
          keyring(k2),
          'whsec_cHV0IG1lYW53aGlsZQ==',
          destinationSecretAad(cfg.keys.workspace, id),
        ),
      },
    };
    const redis = clients.redis();
    const racing = new Proxy(redis, {
      get(target, prop, receiver) {
        if (prop === 'hgetall')
          return async (key: string) => {
            const read = await target.hgetall(key);
            await defs.put('destinations', put);
            return read;
          };
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const r = await reencryptDestinationCredentials(racing, cfg.redis.prefix, keyring(k2, k1));
    expect(r.unreadable).toEqual([]);
    const stored = (await defs.get('destinations', cfg.keys.workspace, id))!;
    // the PUT's definition, not the rotation's copy of the one before it
    expect(stored).toEqual(put);
    expect(signingSecretOf(keyring(k2), stored)).toBe('whsec_cHV0IG1lYW53aGlsZQ==');
    // and with nothing racing it, a definition under K1 is re-sealed
    const other = await api('POST', '/v1/destinations', webhook({ name: 'calm' }));
    const r2 = await reencryptDestinationCredentials(redis, cfg.redis.prefix, keyring(k2, k1));
    expect(r2.reencrypted).toBeGreaterThanOrEqual(1);
    const calm = (await defs.get('destinations', cfg.keys.workspace, other.body.id))!;
    expect(calm.http.sealedSecret!.kid).toBe(k2.id);
    expect(signingSecretOf(keyring(k2), calm)).toBe(other.body.http.secret);
    for (const d of [id, other.body.id]) await defs.remove('destinations', cfg.keys.workspace, d);
  });
});

describe('a destinations service without the key', () => {
  it('retries (nothing dead-lettered, nothing sent unsigned) and delivers once the key is back', async () => {
    const t = topics(cfg.kafka.topicPrefix);
    const ledger = await readTopic<{
      campaign_id: string;
      outcome: string;
      reason: string;
      send_key: string;
    }>(cfg.kafka.brokers, t.activationLedger, uniqueId('ledger-read-'));
    const letters = await readTopic<{ destinationId: string }>(
      cfg.kafka.brokers,
      t.deadLetter,
      uniqueId('dlq-read-'),
    );
    closers.push(ledger.stop, letters.stop);
    const hook = await receiver(200);
    closers.push(hook.close);
    const created = await api(
      'POST',
      '/v1/destinations',
      webhook({
        source: { kind: 'events', filter: { '==': [{ var: 'event' }, 'Keyless'] } },
        http: { url: hook.url },
        retry: { maxAttempts: 20, initialBackoffMs: 50 },
      }),
    );
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    const secret = created.body.http.secret as string;
    const noKey: Config = { ...cfg, channels: { ...cfg.channels, secrets: keyring() } };
    const options = { retryPollMs: 100, breaker: { failures: 3, cooldownMs: 300, maxCooldownMs: 1000 } };
    let service = await startDestinations(noKey, clients, log, { options });
    closers.push(() => service.stop());
    await eventually('consuming', () => service.worker(id)?.started.then(() => true), 60_000);
    const ids = await produceEvents(
      producer,
      t.events,
      cfg.keys.workspace,
      [1, 2, 3].map((n) => ({ user: 'keyless', event: 'Keyless', properties: { n } })),
    );
    const retried = await eventually('retried for the missing key', () =>
      ledger.seen.find((m) => m.value.campaign_id === id && m.value.outcome === 'retried'),
    );
    expect(retried.value.reason).toMatch(
      /^credentials unreadable: sealed with key [0-9a-f]{8} but CDP_SECRETS_KEY is not set/,
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect(hook.arrivals).toHaveLength(0);
    expect(letters.seen.filter((l) => l.value.destinationId === id)).toHaveLength(0);

    // the key put right: what waited is delivered, signed with the secret shown at creation
    await service.stop();
    service = await startDestinations(cfg, clients, log, { options });
    await eventually(
      'all three delivered',
      () => {
        const got = new Set(hook.arrivals.map((a) => (JSON.parse(a.body) as { id: string }).id));
        return ids.every((m) => got.has(m));
      },
      60_000,
    );
    for (const a of hook.arrivals)
      expect(a.headers['webhook-signature']).toBe(
        signWebhook(secret, a.id, Number(a.headers['webhook-timestamp']), a.body),
      );
    expect(letters.seen.filter((l) => l.value.destinationId === id)).toHaveLength(0);
    await defs.remove('destinations', cfg.keys.workspace, id);
  }, 120_000);
});
