// `cdp migrate` twice is a no-op the second time, and the BI views answer deduplicated,
// person-stitched rows on chDB (the same DDL a ClickHouse server runs).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll } from '../cli/services.ts';
import { toHistoryRow } from '../processor/to-history-row.ts';
import { toIdentityRows } from '../processor/to-identity-rows.ts';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import type { Config } from '../runtime/config.ts';
import { ledgerRow } from '../test/fixtures.ts';
import { testConfig, testLogger } from '../test/harness.ts';
import type { NormalizedEvent } from './event.ts';
import { loadMigrations } from './migrations.ts';

let cfg: Config;
let ch: ClickHouseClient;

const rows = async <T>(query: string, params: Record<string, unknown> = {}) =>
  (
    await ch.query({ query, query_params: { ws: cfg.keys.workspace, ...params }, format: 'JSONEachRow' })
  ).json<T>();

beforeAll(async () => {
  cfg = testConfig();
  await migrateAll(cfg, testLogger(cfg));
  await migrateAll(cfg, testLogger(cfg));
  ch = await createClickHouse(cfg.clickhouse);
});
afterAll(async () => {
  await ch?.close();
});

const event = (messageId: string, ids: Partial<NormalizedEvent>, extra: Partial<NormalizedEvent> = {}) =>
  toHistoryRow({
    workspaceId: cfg.keys.workspace,
    type: 'track',
    messageId,
    userId: null,
    anonymousId: null,
    event: 'Viewed',
    properties: {},
    traits: {},
    context: {},
    integrations: {},
    timestamp: '2026-04-01T10:00:00.000Z',
    receivedAt: '2026-04-01T10:00:00.000Z',
    ...ids,
    ...extra,
  });

describe('migrations and BI views', () => {
  it('applies each migration once however often it runs', async () => {
    const applied = await rows<{ version: number; n: string }>(
      'SELECT version, count() AS n FROM schema_migrations GROUP BY version ORDER BY version',
    );
    // every migration file, once
    expect(applied.map((r) => Number(r.version))).toEqual(loadMigrations().map((m) => m.version));
    expect(applied.length).toBeGreaterThanOrEqual(4);
    expect(applied.every((r) => Number(r.n) === 1)).toBe(true);
    const views = await rows<{ name: string }>(
      "SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE 'bi\\_%' ORDER BY name",
    );
    expect(views.map((v) => v.name)).toEqual([
      'bi_audit',
      'bi_consent',
      'bi_conversions',
      'bi_events',
      'bi_identities',
      'bi_journey_steps',
      'bi_segment_members',
      'bi_segment_membership',
      'bi_sends',
      'bi_touchpoints',
    ]);
  });

  it('serves deduplicated events with the stitched person, touchpoints, conversions and members', async () => {
    const campaign = { context: { campaign: { name: 'spring', source: 'google' } } };
    const all = [
      event('e1', { anonymousId: 'anon-1' }, campaign),
      event('e2', { userId: 'ada' }, { event: 'Order Completed', properties: { revenue: 12.5 } }),
      event('e3', { anonymousId: 'anon-stranger' }),
    ];
    await ch.insert({ table: 'events', values: all, format: 'JSONEachRow' });
    await ch.insert({ table: 'events', values: all.slice(0, 2), format: 'JSONEachRow' }); // a replay
    await ch.insert({
      table: 'identity_links',
      format: 'JSONEachRow',
      values: toIdentityRows(
        {
          workspaceId: cfg.keys.workspace,
          profileId: 'p-ada',
          identifiers: ['anon:anon-1', 'user:ada'],
          mergedProfileIds: [],
          version: 1,
          messageId: 'x',
          occurredAt: '2026-04-01T00:00:00Z',
        },
        Date.now(),
      ),
    });
    await ch.insert({
      table: 'segment_membership_history',
      format: 'JSONEachRow',
      values: [
        {
          workspace_id: cfg.keys.workspace,
          segment_id: 's',
          segment_version: 1,
          profile_id: 'p-ada',
          type: 'entered',
          epoch: 1,
          message_id: 'a',
          at: Date.now(),
        },
        {
          workspace_id: cfg.keys.workspace,
          segment_id: 's',
          segment_version: 1,
          profile_id: 'p-bob',
          type: 'entered',
          epoch: 1,
          message_id: 'b',
          at: Date.now(),
        },
        {
          workspace_id: cfg.keys.workspace,
          segment_id: 's',
          segment_version: 1,
          profile_id: 'p-bob',
          type: 'exited',
          epoch: 2,
          message_id: 'c',
          at: Date.now(),
        },
        {
          workspace_id: cfg.keys.workspace,
          segment_id: 's',
          segment_version: 1,
          profile_id: 'p-bob',
          type: 'exited',
          epoch: 2,
          message_id: 'c',
          at: Date.now(),
        },
      ],
    });
    expect(
      await rows(
        'SELECT message_id, person_id FROM bi_events WHERE workspace_id = {ws:String} ORDER BY message_id',
      ),
    ).toEqual([
      { message_id: 'e1', person_id: 'p-ada' },
      { message_id: 'e2', person_id: 'p-ada' },
      { message_id: 'e3', person_id: 'a:anon-stranger' },
    ]);
    expect(
      await rows('SELECT message_id, campaign_name FROM bi_touchpoints WHERE workspace_id = {ws:String}'),
    ).toEqual([{ message_id: 'e1', campaign_name: 'spring' }]);
    expect(
      await rows('SELECT message_id, revenue FROM bi_conversions WHERE workspace_id = {ws:String}'),
    ).toEqual([{ message_id: 'e2', revenue: 12.5 }]);
    expect(
      await rows('SELECT toUInt32(count()) AS n FROM bi_segment_membership WHERE workspace_id = {ws:String}'),
    ).toEqual([{ n: 3 }]);
    expect(await rows('SELECT profile_id FROM bi_segment_members WHERE workspace_id = {ws:String}')).toEqual([
      { profile_id: 'p-ada' },
    ]);
  });

  it('serves sends once with their journey step and person, journey steps, consent without the address, the audit', async () => {
    const ws = cfg.keys.workspace;
    const T = Date.parse('2026-04-02T10:00:00Z');
    const sent = ledgerRow({
      workspace_id: ws,
      at: T,
      send_key: 'k1',
      campaign_id: 'jrn_a@2.mail',
      profile_id: 'p-old',
    });
    await ch.insert({
      table: 'activation_ledger',
      format: 'JSONEachRow',
      values: [
        sent,
        { ...sent, at: T + 50 }, // the same decision again (a redelivered batch)
        ledgerRow({
          workspace_id: ws,
          at: T + 1,
          send_key: 'k2',
          campaign_id: 'cmp_x',
          profile_id: 'p-cy',
          outcome: 'suppressed',
          reason: 'quiet_hours',
        }),
        ledgerRow({
          workspace_id: 'other-ws',
          at: T,
          send_key: 'k9',
          campaign_id: 'cmp_x',
          profile_id: 'p-cy',
        }),
      ],
    });
    // p-old was merged into p-new
    await ch.insert({
      table: 'identity_links',
      format: 'JSONEachRow',
      values: toIdentityRows(
        {
          workspaceId: ws,
          profileId: 'p-new',
          identifiers: ['user:new'],
          mergedProfileIds: ['p-old'],
          version: 7,
          messageId: 'm',
          occurredAt: '2026-04-02T00:00:00Z',
        },
        T,
      ),
    });
    expect(
      await rows(
        'SELECT send_key, journey_id, journey_node, campaign_id, person_id, outcome, reason FROM bi_sends WHERE workspace_id = {ws:String} ORDER BY send_key',
      ),
    ).toEqual([
      {
        send_key: 'k1',
        journey_id: 'jrn_a',
        journey_node: 'mail',
        campaign_id: 'jrn_a@2.mail',
        person_id: 'p-new',
        outcome: 'sent',
        reason: '',
      },
      {
        send_key: 'k2',
        journey_id: '',
        journey_node: '',
        campaign_id: 'cmp_x',
        person_id: 'p-cy',
        outcome: 'suppressed',
        reason: 'quiet_hours',
      },
    ]);
    const step = {
      workspace_id: ws,
      at: T,
      journey_id: 'jrn_a',
      version: 2,
      profile_id: 'p-old',
      run: 1,
      node_id: 'split',
      step: 'branched',
      detail: 'holdout',
      message_id: 's1',
    };
    await ch.insert({ table: 'journey_steps', format: 'JSONEachRow', values: [step, step] });
    expect(
      await rows(
        'SELECT person_id, node_id, step, detail FROM bi_journey_steps WHERE workspace_id = {ws:String}',
      ),
    ).toEqual([{ person_id: 'p-new', node_id: 'split', step: 'branched', detail: 'holdout' }]);
    await ch.insert({
      table: 'consent_log',
      format: 'JSONEachRow',
      values: [
        {
          workspace_id: ws,
          at: T,
          profile_id: 'p-new',
          identifiers: ['email:n@x.io'],
          channel: 'email',
          purpose: 'marketing',
          subscribed: 1,
          source: 'form:f1@1',
          actor: '',
          campaign_id: '',
          ip: '203.0.113.9',
          user_agent: 'UA',
          text: 'Yes please',
        },
      ],
    });
    const consent = await rows<Record<string, unknown>>(
      'SELECT * FROM bi_consent WHERE workspace_id = {ws:String}',
    );
    expect(consent).toHaveLength(1);
    expect(consent[0]).toMatchObject({
      profile_id: 'p-new',
      channel: 'email',
      purpose: 'marketing',
      subscribed: 1,
      source: 'form:f1@1',
    });
    expect(Object.keys(consent[0]!)).not.toContain('ip');
    expect(JSON.stringify(consent)).not.toMatch(/203\.0\.113|n@x\.io|Yes please/);
    await ch.insert({
      table: 'audit_log',
      format: 'JSONEachRow',
      values: [
        {
          workspace_id: ws,
          at: T,
          actor: 'key:ab12',
          action: 'update',
          entity_type: 'segment',
          entity_id: 's1',
          before: '{"v":1}',
          after: '{"v":2}',
        },
      ],
    });
    expect(
      await rows(
        'SELECT actor, action, entity_type, entity_id, before, after FROM bi_audit WHERE workspace_id = {ws:String}',
      ),
    ).toEqual([
      {
        actor: 'key:ab12',
        action: 'update',
        entity_type: 'segment',
        entity_id: 's1',
        before: '{"v":1}',
        after: '{"v":2}',
      },
    ]);
  });
});
