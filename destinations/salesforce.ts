// Salesforce built-in: records upserted by an external id field through the sObject
// Collections upsert — PATCH /services/data/{version}/composite/sobjects/{object}/{field}
// with `{allOrNone: false, records: [{attributes: {type}, <field>: id, …}]}`, up to 200
// records, OAuth access token as Bearer. Each mapped item is a record: its external id
// field's value is the id, its other fields the record's fields (strings, numbers, booleans,
// null).
//
// Answers: 200 is an array of per-record results in the records' order: a record with
// `success: false` is dead-lettered alone with its errors (statusCode: message), save
// UNABLE_TO_LOCK_ROW and the like, which are retried alone; the rest delivered. Errors for the
// whole request come as `[{message, errorCode}]`: 401 INVALID_SESSION_ID final and counted by
// the circuit; 403 REQUEST_LIMIT_EXCEEDED (the org's API limit) retried a minute on, the
// destination holding its requests meanwhile and the circuit not counting it, as it does when
// `Sforce-Limit-Info: api-usage=used/max` says the limit is reached (the minute is
// CDP_DESTINATION_LIMIT_WAIT_MS, `limitWaitMs` here); other 4xx final with
// Salesforce's message (a 400 for the whole request split by the worker until only the
// records at fault are refused); 5xx and network errors retried.
import type { IncomingHttpHeaders } from 'node:http';
import type { GuardPolicy } from '../activation/webhook/address-guard.ts';
import type { DeliveryItem } from '../schemas/destination.ts';
import type { BuiltinResult } from './hubspot.ts';
import { type ProviderAnswer, providerRequest } from './provider-request.ts';

export const SALESFORCE_MAX_BATCH = 200;
/** How long the org's spent API limit holds the destination when nothing says otherwise. */
export const LIMIT_WAIT_MS = 60_000;
/** Per-record status codes worth another try. */
const RETRIABLE_RECORD_CODES = new Set([
  'UNABLE_TO_LOCK_ROW',
  'SERVER_UNAVAILABLE',
  'REQUEST_RUNNING_TOO_LONG',
]);

const printable = (s: string, n: number) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, n);

/** One mapped item as a record, or why it cannot be one. */
export function salesforceRecord(
  data: unknown,
  object: string,
  field: string,
): Record<string, unknown> | string {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'a record is a mapped object';
  const o = data as Record<string, unknown>;
  const id = o[field];
  if ((typeof id !== 'string' && typeof id !== 'number') || String(id).trim() === '')
    return `no ${field} to upsert by`;
  const rec: Record<string, unknown> = { attributes: { type: object } };
  for (const [k, v] of Object.entries(o)) {
    if (k === 'attributes') return 'attributes is not a field';
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object') return `field ${k} is not a string, number, boolean or null`;
    rec[k] = k === field ? String(v).trim() : v;
  }
  return rec;
}

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Whether `Sforce-Limit-Info: api-usage=used/max` says the org's limit is reached. */
export function limitReached(h: IncomingHttpHeaders): boolean {
  const m = /api-usage=(\d+)\/(\d+)/.exec(header(h, 'sforce-limit-info') ?? '');
  return m !== null && Number(m[1]) >= Number(m[2]);
}

function requestError(a: ProviderAnswer): { code: string; message: string } {
  try {
    const b = JSON.parse(a.body) as unknown;
    const e = (Array.isArray(b) ? b[0] : b) as { errorCode?: unknown; message?: unknown } | undefined;
    if (e && typeof e.errorCode === 'string')
      return { code: e.errorCode, message: printable(`${e.errorCode}: ${String(e.message ?? '')}`, 500) };
  } catch {}
  return { code: '', message: printable(a.body, 200) };
}

export async function sendSalesforce(
  items: readonly DeliveryItem[],
  cfg: {
    baseUrl: string;
    apiVersion: string;
    object: string;
    externalIdField: string;
    token: string;
    timeoutMs: number;
    policy: GuardPolicy;
    now: number;
    /** How long a spent API limit holds the destination (default LIMIT_WAIT_MS). */
    limitWaitMs?: number;
  },
): Promise<BuiltinResult> {
  const limitWait = cfg.limitWaitMs ?? LIMIT_WAIT_MS;
  const itemErrors = new Map<number, string>();
  const itemRetries = new Map<number, string>();
  const records: Record<string, unknown>[] = [];
  const indexOf: number[] = [];
  const seen = new Set<string>();
  for (const [i, item] of items.entries()) {
    const r = salesforceRecord(item.data, cfg.object, cfg.externalIdField);
    if (typeof r === 'string') {
      itemErrors.set(i, `permanent: ${r}`);
      continue;
    }
    const id = String(r[cfg.externalIdField]);
    // Salesforce refuses a request naming one id twice: a later change of the same record waits its turn
    if (seen.has(id)) {
      itemRetries.set(i, `${cfg.externalIdField} ${id} twice in one batch`);
      continue;
    }
    seen.add(id);
    records.push(r);
    indexOf.push(i);
  }
  if (records.length === 0)
    return { ok: true, status: 0, retriable: false, latencyMs: 0, itemErrors, itemRetries };
  const a = await providerRequest(
    {
      url: `${cfg.baseUrl.replace(/\/+$/, '')}/services/data/${cfg.apiVersion}/composite/sobjects/${cfg.object}/${cfg.externalIdField}`,
      method: 'PATCH',
      headers: { authorization: `Bearer ${cfg.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ allOrNone: false, records }),
    },
    { ...cfg.policy, timeoutMs: cfg.timeoutMs },
  );
  const base = { status: a.status, latencyMs: a.latencyMs };
  if (a.status === 0) return { ...base, ok: false, retriable: !a.refused, error: a.error ?? 'no answer' };
  const hold = limitReached(a.headers) ? { holdMs: limitWait } : {};
  if (a.status === 200) {
    let results: unknown;
    try {
      results = JSON.parse(a.body);
    } catch {}
    if (!Array.isArray(results) || results.length !== records.length)
      return {
        ...base,
        ok: false,
        retriable: true,
        error: 'Salesforce 200 without a result per record',
        ...hold,
      };
    results.forEach((r: { success?: unknown; errors?: unknown }, k) => {
      if (r?.success === true) return;
      const errors = Array.isArray(r?.errors)
        ? (r.errors as Array<{ statusCode?: unknown; message?: unknown }>)
        : [];
      const text = printable(
        errors.map((e) => `${String(e.statusCode ?? '')}: ${String(e.message ?? '')}`).join('; ') || 'failed',
        500,
      );
      if (errors.some((e) => RETRIABLE_RECORD_CODES.has(String(e.statusCode))))
        itemRetries.set(indexOf[k]!, `Salesforce ${text}`);
      else itemErrors.set(indexOf[k]!, `permanent: Salesforce ${text}`);
    });
    return { ...base, ok: true, retriable: false, itemErrors, itemRetries, ...hold };
  }
  const e = requestError(a);
  const message = `Salesforce ${a.status}: ${e.message}`;
  if (e.code === 'REQUEST_LIMIT_EXCEEDED' || a.status === 429)
    return {
      ...base,
      ok: false,
      retriable: true,
      rateLimited: true,
      error: message,
      retryAfterMs: limitWait,
      holdMs: limitWait,
    };
  if (a.status === 401 || e.code === 'INVALID_SESSION_ID')
    return { ...base, ok: false, retriable: false, tripsBreaker: true, error: message };
  const retriable = a.status === 408 || a.status >= 500;
  return { ...base, ok: false, retriable, error: message, ...hold };
}
