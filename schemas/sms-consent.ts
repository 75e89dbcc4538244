// SMS keyword decisions (STOP / START replies, ingest/sms-webhooks.ts) on their way to
// ClickHouse consent_log: the ingest host keeps the decision itself (the `phone:` suppression)
// and queues the row; the query service, which holds ClickHouse, writes it
// (query/sms-consent-log.ts).

/** A consent decision from an SMS keyword, queued for consent_log. */
export interface SmsConsentJob {
  workspaceId: string;
  at: number;
  /** The sender's number as suppressed (digits and `+`). */
  phone: string;
  subscribed: boolean;
  /** The message received, as sent. */
  text: string;
  messageSid: string;
}

/** Sorted set of SmsConsentJob JSON → epoch ms when it is due. */
export const smsConsentDueKey = (prefix: string) => `${prefix}:sms:consent-due`;

/** consent_log `source` of these decisions. */
export const SMS_KEYWORD_SOURCE = 'sms_keyword';
