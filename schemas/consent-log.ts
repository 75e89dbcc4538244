// Consent as the query API writes it and `cdp rebuild` restores it. Redis holds the current
// decision per profile, channel and purpose (what activation reads at send time); ClickHouse
// `consent_log` holds every decision with its source, so consent is provable and survives
// the loss of Redis: a row names the person by their identifiers at the time, which a
// rebuild (new profile ids) resolves again.
import { readFileSync } from 'node:fs';
import type { ClickHouseClient } from '@clickhouse/client';
import { withSurvivor } from '../profiles/survivor.ts';
import { consentField, consentValue } from './contact.ts';
import { workspaceKeys } from './redis-keys.ts';

const SCRIPT = withSurvivor(readFileSync(new URL('./write-consent.lua', import.meta.url), 'utf8'));

/** The part of an ioredis client the consent store uses. */
interface ScriptRedis {
  defineCommand(name: string, def: { numberOfKeys: number; lua: string }): void;
  get(key: string): Promise<string | null>;
}

export interface ConsentDecision {
  channel: string;
  /** `*` for every purpose. */
  purpose: string;
  subscribed: boolean;
  /** A grant waiting for double opt-in confirmation (stored `pending`, not subscribed). */
  pending?: boolean;
}

/** Where a decision came from: `api`, `unsubscribe_link`, `form:<id>@<version>`, `link` (a confirmation). */
export interface ConsentSource {
  source: string;
  actor: string;
  /** The campaign whose unsubscribe link was used, if any. */
  campaignId?: string;
  ip?: string;
  userAgent?: string;
  /** The exact text the person was shown, if any. */
  text?: string;
  /** The double opt-in record a pending grant and its confirmation share. */
  ref?: string;
}

export interface ConsentLogRow {
  workspace_id: string;
  at: number;
  profile_id: string;
  identifiers: string[];
  channel: string;
  purpose: string;
  subscribed: 0 | 1;
  source: string;
  actor: string;
  campaign_id: string;
  ip: string;
  user_agent: string;
  text: string;
  /** `subscribed`, `revoked` or `pending` (rows before migration 011: empty, read `subscribed`). */
  status: string;
  ref: string;
}

function script(redis: ScriptRedis) {
  const r = redis as unknown as { cdpWriteConsent?: (...a: Array<string | number>) => Promise<string[]> };
  if (typeof r.cdpWriteConsent !== 'function')
    redis.defineCommand('cdpWriteConsent', { numberOfKeys: 1, lua: SCRIPT });
  return (r as Required<typeof r>).cdpWriteConsent.bind(redis);
}

/**
 * Records decisions for a profile (followed to its survivor, atomically) and answers the
 * survivor's id and identifiers, or null when that profile was erased (nothing is written).
 * `mode: 'newer'` keeps a newer decision already there.
 */
export async function storeConsent(
  redis: ScriptRedis,
  prefix: string,
  workspaceId: string,
  profileId: string,
  decisions: ConsentDecision[],
  atMs: number,
  source: string,
  mode: 'set' | 'newer' = 'set',
): Promise<{ profileId: string; identifiers: string[] } | null> {
  const args: string[] = [];
  for (const d of decisions)
    args.push(consentField(d.channel, d.purpose), consentValue(d.subscribed, atMs, source, d.pending));
  const [survivor, ...identifiers] = await script(redis)(
    workspaceKeys(prefix, workspaceId).profile(profileId),
    profileId,
    mode,
    ...args,
  );
  // null: the profile was erased; nothing was written
  return survivor === undefined ? null : { profileId: survivor, identifiers };
}

/** Appends decisions to ClickHouse consent_log (migration 007). */
export async function logConsent(
  clickhouse: ClickHouseClient,
  workspaceId: string,
  person: { profileId: string; identifiers: string[] },
  decisions: ConsentDecision[],
  atMs: number,
  from: ConsentSource,
): Promise<void> {
  const values: ConsentLogRow[] = decisions.map((d) => ({
    workspace_id: workspaceId,
    at: atMs,
    profile_id: person.profileId,
    identifiers: person.identifiers,
    channel: d.channel,
    purpose: d.purpose,
    subscribed: d.subscribed && !d.pending ? 1 : 0,
    source: from.source,
    actor: from.actor,
    campaign_id: from.campaignId ?? '',
    ip: from.ip ?? '',
    user_agent: from.userAgent ?? '',
    text: from.text ?? '',
    status: d.pending ? 'pending' : d.subscribed ? 'subscribed' : 'revoked',
    ref: from.ref ?? '',
  }));
  if (values.length > 0) await clickhouse.insert({ table: 'consent_log', format: 'JSONEachRow', values });
}

/**
 * After a rebuild: every logged decision, oldest first, applied to the profile its
 * identifiers resolve to now (the newest decision per field wins; a person none of whose
 * identifiers is known any more is skipped). Returns how many decisions were applied.
 */
export async function replayConsentLog(opts: {
  clickhouse: ClickHouseClient;
  redis: ScriptRedis;
  prefix: string;
  workspaceId?: string;
}): Promise<{ applied: number; skipped: number }> {
  const rs = await opts.clickhouse.query({
    query: `SELECT workspace_id, toString(toUnixTimestamp64Milli(at)) AS at, identifiers, channel, purpose,
                   subscribed, source, status
            FROM consent_log
            WHERE {all:UInt8} = 1 OR workspace_id = {ws:String}
            ORDER BY workspace_id, at`,
    query_params: { all: opts.workspaceId ? 0 : 1, ws: opts.workspaceId ?? '' },
    format: 'JSONEachRow',
  });
  let applied = 0;
  let skipped = 0;
  type Row = Pick<
    ConsentLogRow,
    'workspace_id' | 'identifiers' | 'channel' | 'purpose' | 'source' | 'status'
  > & {
    at: string;
    subscribed: number;
  };
  for await (const rows of rs.stream<Row>()) {
    for (const r of rows) {
      const row = r.json();
      const keys = workspaceKeys(opts.prefix, row.workspace_id);
      let pid: string | null = null;
      for (const id of row.identifiers) {
        const sep = id.indexOf(':');
        pid = await opts.redis.get(keys.identity(id.slice(0, sep) as 'user', id.slice(sep + 1)));
        if (pid) break;
      }
      if (!pid) {
        skipped++;
        continue;
      }
      const stored = await storeConsent(
        opts.redis,
        opts.prefix,
        row.workspace_id,
        pid,
        [
          {
            channel: row.channel,
            purpose: row.purpose,
            subscribed: row.subscribed === 1,
            pending: row.status === 'pending',
          },
        ],
        Number(row.at),
        row.source,
        'newer',
      );
      if (stored) applied++;
      else skipped++;
    }
  }
  return { applied, skipped };
}
