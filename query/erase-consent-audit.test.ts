// The audit trail of an erased person's consent decisions against a real chDB: the rows stay
// (an auditor sees that consent was asked and answered, when, by which channel and source)
// but no longer say whose (entity_id `erased`); a retried step copies nothing twice; other
// people's rows and other workspaces' are untouched.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../runtime/clickhouse.ts';
import { migrate } from '../schemas/migrations.ts';
import { recordAudit } from './audit.ts';
import { anonymiseConsentAudit, ERASED_AUDIT_ENTITY } from './erase-profile.ts';

let ch: ClickHouseClient;
const ws = 'ws1';

beforeAll(async () => {
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-erase-audit-')) });
  await migrate(ch);
});
afterAll(async () => {
  await ch?.close();
});

const consent = (w: string, pid: string, atMs: number, subscribed: boolean) =>
  recordAudit(
    ch,
    {
      workspaceId: w,
      actor: 'unsubscribe_link',
      action: 'update',
      entityType: 'consent',
      entityId: pid,
      before: [{ channel: 'email', purpose: 'newsletter', subscribed: !subscribed }],
      after: [{ channel: 'email', purpose: 'newsletter', subscribed }],
    },
    new Date(atMs),
  );

async function rows(w: string) {
  const rs = await ch.query({
    query: `SELECT entity_type, entity_id, toUnixTimestamp64Milli(at) AS at, after FROM audit_log
            WHERE workspace_id = {w:String} ORDER BY at, entity_id`,
    query_params: { w },
    format: 'JSONEachRow',
  });
  return (await rs.json<{ entity_type: string; entity_id: string; at: string; after: string }>()).map(
    (r) => ({
      ...r,
      at: Number(r.at),
    }),
  );
}

describe('the consent audit trail of an erased person', () => {
  it('keeps the decisions, no longer saying whose', async () => {
    const T = Date.parse('2026-05-01T10:00:00Z');
    await consent(ws, 'pid-a', T, true);
    await consent(ws, 'pid-b', T + 1, false); // merged into pid-a
    await consent(ws, 'pid-a', T + 2, false);
    await consent(ws, 'pid-c', T + 3, true); // someone else
    await consent('ws2', 'pid-a', T, true); // the same id in another workspace: someone else
    await recordAudit(
      ch,
      {
        workspaceId: ws,
        actor: 'k',
        action: 'update',
        entityType: 'segment',
        entityId: 'pid-a',
        before: null,
        after: null,
      },
      new Date(T + 4),
    );

    expect(await anonymiseConsentAudit(ch, ws, ['pid-a', 'pid-b'])).toBe(3);
    const after = await rows(ws);
    expect(after.map((r) => [r.entity_type, r.entity_id, r.at])).toEqual([
      ['consent', ERASED_AUDIT_ENTITY, T],
      ['consent', ERASED_AUDIT_ENTITY, T + 1],
      ['consent', ERASED_AUDIT_ENTITY, T + 2],
      ['consent', 'pid-c', T + 3],
      ['segment', 'pid-a', T + 4],
    ]);
    // what was decided stays
    expect(JSON.parse(after[2]!.after)).toEqual([
      { channel: 'email', purpose: 'newsletter', subscribed: false },
    ]);
    expect((await rows('ws2')).map((r) => r.entity_id)).toEqual(['pid-a']);

    // again (the sweep), and a retry after a crash between the copy and the delete: no duplicates
    expect(await anonymiseConsentAudit(ch, ws, ['pid-a', 'pid-b'])).toBe(0);
    await consent(ws, 'pid-a', T, true); // the original back, as if its delete had not happened
    expect(await anonymiseConsentAudit(ch, ws, ['pid-a'])).toBe(1);
    expect((await rows(ws)).filter((r) => r.entity_id === ERASED_AUDIT_ENTITY)).toHaveLength(3);
  });
});
