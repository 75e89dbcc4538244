// Campaign outcomes from the activation ledger. A send key counts once per outcome (a
// redelivered decision is not counted twice); latency is from the change reaching
// activation to the provider accepting the message. The email provider's own events
// (ingest/email-webhooks.ts: delivered, bounced, soft_bounced, complained rows, attempt 0)
// are counted apart, in `delivery`: they never count as sends.
import type { ClickHouseClient } from '../../runtime/clickhouse.ts';

export interface CampaignStats {
  campaignId: string;
  sent: number;
  failed: number;
  retried: number;
  delayed: number;
  suppressed: { total: number; byReason: Record<string, number> };
  latencyMs: { p50: number | null; p99: number | null };
  /**
   * What the email provider reported back (its webhooks): sends delivered, hard-bounced,
   * soft-bounced (at least once) and complained about, and the rates over the sends.
   */
  delivery: {
    delivered: number;
    bounced: number;
    softBounced: number;
    complained: number;
    deliveryRate: number | null;
    bounceRate: number | null;
    complaintRate: number | null;
  };
  /**
   * Email open and click tracking (events `Email Opened` / `Email Link Clicked`): sends a
   * person opened or clicked (`bot: false`), sends only machines did (scanners, privacy
   * proxies), and the person's rates over the sends.
   */
  engagement: {
    opened: number;
    clicked: number;
    machineOnlyOpened: number;
    machineOnlyClicked: number;
    openRate: number | null;
    clickRate: number | null;
  };
}

export async function campaignStats(
  ch: ClickHouseClient,
  ws: string,
  campaignId: string,
): Promise<CampaignStats> {
  const params = { ws, cid: campaignId };
  const rs = await ch.query({
    query: `SELECT
        uniqExactIf(send_key, outcome = 'sent') AS sent,
        uniqExactIf(send_key, outcome = 'failed') AS failed,
        countIf(outcome = 'retried') AS retried,
        countIf(outcome = 'delayed') AS delayed,
        uniqExactIf(send_key, outcome = 'delivered') AS delivered,
        uniqExactIf(send_key, outcome = 'bounced') AS bounced,
        uniqExactIf(send_key, outcome = 'soft_bounced') AS soft_bounced,
        uniqExactIf(send_key, outcome = 'complained') AS complained,
        quantileExactIf(0.5)(latency_ms, outcome = 'sent') AS p50,
        quantileExactIf(0.99)(latency_ms, outcome = 'sent') AS p99
      FROM activation_ledger WHERE workspace_id = {ws:String} AND campaign_id = {cid:String}`,
    query_params: params,
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<Record<string, string | number>>();
  const byReasonRs = await ch.query({
    query: `SELECT reason, uniqExact(send_key) AS n FROM activation_ledger
      WHERE workspace_id = {ws:String} AND campaign_id = {cid:String} AND outcome = 'suppressed'
      GROUP BY reason ORDER BY reason`,
    query_params: params,
    format: 'JSONEachRow',
  });
  const byReason: Record<string, number> = {};
  let total = 0;
  for (const r of await byReasonRs.json<{ reason: string; n: string | number }>()) {
    byReason[r.reason] = Number(r.n);
    total += Number(r.n);
  }
  const sent = Number(row?.sent ?? 0);
  // per send: did a person open / click, did only machines
  const engagementRs = await ch.query({
    query: `SELECT
        countIf(human_open) AS opened,
        countIf(human_click) AS clicked,
        countIf(any_open AND NOT human_open) AS machine_opened,
        countIf(any_click AND NOT human_click) AS machine_clicked
      FROM (
        SELECT JSONExtractString(properties, 'sendKey') AS sk,
          max(event = 'Email Opened' AND NOT JSONExtractBool(properties, 'bot')) AS human_open,
          max(event = 'Email Link Clicked' AND NOT JSONExtractBool(properties, 'bot')) AS human_click,
          max(event = 'Email Opened') AS any_open,
          max(event = 'Email Link Clicked') AS any_click
        FROM events
        WHERE workspace_id = {ws:String} AND event IN ('Email Opened', 'Email Link Clicked')
          AND JSONExtractString(properties, 'campaignId') = {cid:String}
        GROUP BY sk
      )`,
    query_params: params,
    format: 'JSONEachRow',
  });
  const [eng] = await engagementRs.json<Record<string, string | number>>();
  const n = (v: string | number | undefined) => Number(v ?? 0);
  const rate = (x: number) => (sent > 0 ? Math.min(1, x / sent) : null);
  const delivery = {
    delivered: n(row?.delivered),
    bounced: n(row?.bounced),
    softBounced: n(row?.soft_bounced),
    complained: n(row?.complained),
  };
  const opened = Number(eng?.opened ?? 0);
  const clicked = Number(eng?.clicked ?? 0);
  return {
    campaignId,
    sent,
    failed: Number(row?.failed ?? 0),
    retried: Number(row?.retried ?? 0),
    delayed: Number(row?.delayed ?? 0),
    suppressed: { total, byReason },
    latencyMs: sent > 0 ? { p50: Number(row?.p50), p99: Number(row?.p99) } : { p50: null, p99: null },
    delivery: {
      ...delivery,
      deliveryRate: rate(delivery.delivered),
      bounceRate: rate(delivery.bounced),
      complaintRate: rate(delivery.complained),
    },
    engagement: {
      opened,
      clicked,
      machineOnlyOpened: Number(eng?.machine_opened ?? 0),
      machineOnlyClicked: Number(eng?.machine_clicked ?? 0),
      openRate: sent > 0 ? Math.min(1, opened / sent) : null,
      clickRate: sent > 0 ? Math.min(1, clicked / sent) : null,
    },
  };
}
