// Access request (GDPR art. 15): everything held on a person, as NDJSON lines written as
// they are read, so a person with millions of events costs no more memory than one page:
//   {"type":"profile", ...}            the profile as GET /v1/profiles/{id} answers it, with
//                                      computed traits and scores, and mergedProfileIds
//   {"type":"consent", ...}            one per consent entry (channel, purpose)
//   {"type":"push_device", ...}        one per push device (deviceId, deviceType, token, lastSeenAt)
//   {"type":"event", ...}              every stored event of the person's identifiers, oldest first
//   {"type":"identity_link", ...}      identity-graph rows of the person's ids and profile ids
//   {"type":"membership", ...}         segment membership history (`change`: entered|exited)
//   {"type":"ledger", ...}             activation decisions (sent, suppressed, …)
//   {"type":"consent_log", ...}        consent decisions (consent_log), when that table exists
//   {"type":"journey_step", ...}       steps of the person's journey runs (journey_steps)
//   {"type":"end", "counts": {...}}    last line: the export is complete (absent: it broke off)
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { Redis } from '../runtime/redis.ts';
import { parseConsentValue } from '../schemas/contact.ts';
import { parseDevice } from '../schemas/push-device.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import { hasPersonTable } from './erase-profile.ts';

const PAGE = 5000;

export async function* exportProfile(
  deps: { redis: Redis; clickhouse: ClickHouseClient; redisPrefix: string },
  ws: string,
  profile: { id: string; userIds: string[]; anonymousIds: string[]; emails: string[] } & Record<
    string,
    unknown
  >,
): AsyncGenerator<string> {
  const k = workspaceKeys(deps.redisPrefix, ws);
  const merged = (await deps.redis.smembers(`${k.profile(profile.id)}:merged`)).sort();
  const pids = [profile.id, ...merged];
  const counts: Record<string, number> = {};
  const line = (type: string, data: Record<string, unknown>) => {
    counts[type] = (counts[type] ?? 0) + 1;
    return `${JSON.stringify({ type, ...data })}\n`;
  };
  yield line('profile', { ...profile, mergedProfileIds: merged });

  for (const pid of pids) {
    const consent = await deps.redis.hgetall(k.consent(pid));
    for (const [field, v] of Object.entries(consent).sort()) {
      const sep = field.indexOf(':');
      yield line('consent', {
        profileId: pid,
        channel: field.slice(0, sep),
        purpose: field.slice(sep + 1),
        ...parseConsentValue(v),
      });
    }
  }
  for (const pid of pids) {
    const devices = await deps.redis.hgetall(k.profileDevices(pid));
    for (const [key, v] of Object.entries(devices).sort()) {
      const d = parseDevice(key, v);
      if (!d) continue;
      yield line('push_device', {
        profileId: pid,
        ...(key.startsWith('i:') ? { deviceId: key.slice(2) } : {}),
        deviceType: d.type,
        token: d.token,
        lastSeenAt: new Date(d.seenMs).toISOString(),
      });
    }
  }

  const params = {
    ws,
    pids,
    uids: profile.userIds,
    aids: profile.anonymousIds,
    emails: profile.emails,
    ids: [
      ...profile.userIds.map((v) => `user:${v}`),
      ...profile.anonymousIds.map((v) => `anon:${v}`),
      ...profile.emails.map((v) => `email:${v}`),
    ],
  };
  // events: keyset pages, oldest first, one row per messageId
  let after: { t: string; m: string } | undefined;
  for (;;) {
    const rs = await deps.clickhouse.query({
      query: `SELECT message_id, type, event, name, user_id, anonymous_id, group_id, previous_id,
                     timestamp, received_at, properties, traits, context, integrations, ip
              FROM events
              WHERE workspace_id = {ws:String}
                AND (user_id IN {uids:Array(String)} OR anonymous_id IN {aids:Array(String)})
                ${after ? 'AND (timestamp, message_id) > ({t:DateTime64(3)}, {m:String})' : ''}
              ORDER BY timestamp, message_id
              LIMIT 1 BY message_id
              LIMIT {limit:UInt32}`,
      query_params: { ...params, limit: PAGE, ...(after ?? {}) },
      format: 'JSONEachRow',
    });
    const rows = await rs.json<Record<string, string>>();
    for (const r of rows) {
      yield line('event', {
        messageId: r.message_id,
        eventType: r.type,
        event: r.event || undefined,
        name: r.name || undefined,
        userId: r.user_id || null,
        anonymousId: r.anonymous_id || null,
        groupId: r.group_id || undefined,
        previousId: r.previous_id || undefined,
        timestamp: toIso(r.timestamp!),
        receivedAt: toIso(r.received_at!),
        properties: parse(r.properties),
        traits: parse(r.traits),
        context: parse(r.context),
        integrations: parse(r.integrations),
        ip: r.ip || undefined,
      });
    }
    if (rows.length < PAGE) break;
    const last = rows[rows.length - 1]!;
    after = { t: last.timestamp!, m: last.message_id! };
  }

  const tables: Array<[string, string, string]> = [
    [
      'identity_link',
      'identity_links',
      `profile_id IN {pids:Array(String)}
         OR (id_type = 'profile' AND id_value IN {pids:Array(String)})
         OR (id_type = 'user' AND id_value IN {uids:Array(String)})
         OR (id_type = 'anon' AND id_value IN {aids:Array(String)})
         OR (id_type = 'email' AND id_value IN {emails:Array(String)})`,
    ],
    ['membership', 'segment_membership_history', 'profile_id IN {pids:Array(String)}'],
    ['ledger', 'activation_ledger', 'profile_id IN {pids:Array(String)}'],
  ];
  if (await hasPersonTable(deps.clickhouse, 'consent_log'))
    tables.push([
      'consent_log',
      'consent_log',
      'profile_id IN {pids:Array(String)} OR hasAny(identifiers, {ids:Array(String)})',
    ]);
  if (await hasPersonTable(deps.clickhouse, 'journey_steps'))
    tables.push(['journey_step', 'journey_steps', 'profile_id IN {pids:Array(String)}']);
  for (const [type, table, where] of tables) {
    // keyset pages need a unique order; these tables are small per person: offset pages
    for (let offset = 0; ; offset += PAGE) {
      const rs = await deps.clickhouse.query({
        query: `SELECT * FROM ${table}
                WHERE workspace_id = {ws:String} AND (${where})
                ORDER BY ALL
                LIMIT {limit:UInt32} OFFSET {offset:UInt64}`,
        query_params: { ...params, limit: PAGE, offset },
        format: 'JSONEachRow',
      });
      const rows = await rs.json<Record<string, unknown>>();
      for (const r of rows) {
        // a row's own `type` (membership: entered|exited) must not hide the line's
        const { workspace_id: _, type: change, ...rest } = r;
        yield line(type, change === undefined ? rest : { ...rest, change });
      }
      if (rows.length < PAGE) break;
    }
  }
  yield `${JSON.stringify({ type: 'end', counts })}\n`;
}

function parse(s: string | undefined): unknown {
  if (!s) return {};
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/** ClickHouse DateTime64 text ("2026-01-02 03:04:05.678") in UTC to ISO 8601. */
function toIso(s: string): string {
  return new Date(`${s.replace(' ', 'T')}Z`).toISOString();
}
