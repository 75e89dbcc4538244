// HubSpot built-in: contacts upserted in batches of up to 100 by a unique property (email by
// default) — POST /crm/v3/objects/contacts/batch/upsert with `inputs: [{id, idProperty,
// properties}]` and a private-app token as Bearer. Each mapped item is a contact: its
// `idProperty` field is the id, the rest (or its `properties` object) the properties.
//
// Answers: 2xx delivered; 207 multi-status: the records its errors name are dead-lettered
// one by one, the rest delivered; 400 (the batch refused as invalid, e.g. one contact's value
// not among an enumeration's options) final, never retried: the worker splits the batch until
// the contacts at fault are alone and dead-letters only them, with HubSpot's message; 401/403 final and counted by the circuit (a revoked
// token fails every delivery); 429 retried no sooner than Retry-After or the rate-limit
// window (X-HubSpot-RateLimit-Interval-Milliseconds), and the worker holds its next request
// as long; a spent window on a success (X-HubSpot-RateLimit-Remaining: 0) holds it too;
// 5xx and network errors retried.
import type { IncomingHttpHeaders } from 'node:http';
import { parseRetryAfter } from '../activation/channels/channel.ts';
import type { GuardPolicy } from '../activation/webhook/address-guard.ts';
import type { DeliveryItem } from '../schemas/destination.ts';
import { type ProviderAnswer, providerRequest } from './provider-request.ts';

export const HUBSPOT_MAX_BATCH = 100;
export const HUBSPOT_UPSERT_PATH = '/crm/v3/objects/contacts/batch/upsert';
/** HubSpot's burst window when an answer names none. */
const DEFAULT_WINDOW_MS = 10_000;
const MAX_PROPERTY_CHARS = 65_536;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{1,63}$/;

/** What a built-in provider's attempt came to (the webhook result, plus what only providers say). */
export interface BuiltinResult {
  ok: boolean;
  status: number;
  retriable: boolean;
  error?: string;
  latencyMs: number;
  retryAfterMs?: number;
  /** On ok: items refused one by one (index → reason), dead-lettered; the rest delivered. */
  itemErrors?: Map<number, string>;
  /** On ok: items that failed one by one but are worth another try (index → reason), retried alone. */
  itemRetries?: Map<number, string>;
  /** The provider's window is spent: the destination sends nothing for this long from the answer (ms). */
  holdMs?: number;
  /** A rate limit, not a failing receiver: the circuit does not count it. */
  rateLimited?: boolean;
  /** Final, and counted by the circuit: the credentials no longer work. */
  tripsBreaker?: boolean;
}

export interface HubspotContact {
  id: string;
  idProperty: string;
  properties: Record<string, string>;
}

/** One mapped item as a contact, or why it cannot be one. */
export function hubspotContact(data: unknown, idProperty: string): HubspotContact | string {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'a contact is a mapped object';
  const o = data as Record<string, unknown>;
  const raw = o[idProperty];
  if (typeof raw !== 'string' && typeof raw !== 'number') return `no ${idProperty} to upsert by`;
  let id = String(raw).trim();
  if (idProperty === 'email') {
    id = id.toLowerCase();
    if (!EMAIL.test(id)) return `"${id.slice(0, 100)}" is not an email address`;
  }
  if (id === '' || id.length > 1000) return `${idProperty} is empty or too long`;
  const src =
    o.properties !== null && typeof o.properties === 'object' && !Array.isArray(o.properties)
      ? (o.properties as Record<string, unknown>)
      : Object.fromEntries(Object.entries(o).filter(([k]) => k !== idProperty));
  const properties: Record<string, string> = {};
  for (const [k, v] of Object.entries(src)) {
    if (v === undefined) continue;
    if (v === null) properties[k] = '';
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
      properties[k] = String(v);
    else return `property ${k} is not a string, number or boolean`;
    if (properties[k]!.length > MAX_PROPERTY_CHARS)
      return `property ${k} is over ${MAX_PROPERTY_CHARS} characters`;
  }
  return { id, idProperty, properties };
}

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** HubSpot's error text: category and message, bounded and printable. */
function hubspotMessage(a: ProviderAnswer): string {
  try {
    const b = JSON.parse(a.body) as { category?: unknown; message?: unknown };
    const parts = [b.category, b.message].filter((x) => typeof x === 'string') as string[];
    if (parts.length > 0)
      return parts
        .join(': ')
        .replace(/[^\x20-\x7e]/g, '?')
        .slice(0, 500);
  } catch {}
  return a.body.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}

/** The window's length from HubSpot's headers, in ms (bounded). */
function windowMs(h: IncomingHttpHeaders): number {
  const n = Number(header(h, 'x-hubspot-ratelimit-interval-milliseconds'));
  return Number.isFinite(n) && n > 0 ? Math.min(n, 86_400_000) : DEFAULT_WINDOW_MS;
}

export async function sendHubspot(
  items: readonly DeliveryItem[],
  cfg: {
    baseUrl: string;
    token: string;
    idProperty: string;
    timeoutMs: number;
    policy: GuardPolicy;
    now: number;
  },
): Promise<BuiltinResult> {
  const itemErrors = new Map<number, string>();
  const inputs: HubspotContact[] = [];
  const indexOf: number[] = [];
  const byId = new Map<string, number[]>();
  items.forEach((item, i) => {
    const c = hubspotContact(item.data, cfg.idProperty);
    if (typeof c === 'string') itemErrors.set(i, `permanent: ${c}`);
    else {
      byId.set(c.id, [...(byId.get(c.id) ?? []), i]);
      inputs.push(c);
      indexOf.push(i);
    }
  });
  if (inputs.length === 0) return { ok: true, status: 0, retriable: false, latencyMs: 0, itemErrors };
  const a = await providerRequest(
    {
      url: `${cfg.baseUrl.replace(/\/+$/, '')}${HUBSPOT_UPSERT_PATH}`,
      method: 'POST',
      headers: { authorization: `Bearer ${cfg.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ inputs }),
    },
    { ...cfg.policy, timeoutMs: cfg.timeoutMs },
  );
  const base = { status: a.status, latencyMs: a.latencyMs };
  if (a.status === 0) return { ...base, ok: false, retriable: !a.refused, error: a.error ?? 'no answer' };
  const remaining = header(a.headers, 'x-hubspot-ratelimit-remaining');
  const spent = remaining !== undefined && Number(remaining) <= 0;
  const hold = spent ? { holdMs: windowMs(a.headers) } : {};
  if (a.status === 207) {
    // multi-status: the errors name their records in `context` (e.g. {"ids": ["a@b.com"]})
    let errors: Array<{ message?: unknown; category?: unknown; context?: unknown }> = [];
    try {
      const b = JSON.parse(a.body) as { errors?: unknown };
      if (Array.isArray(b.errors)) errors = b.errors as typeof errors;
    } catch {}
    let unnamed: string | undefined;
    for (const e of errors) {
      const why =
        `permanent: HubSpot ${[e.category, e.message].filter((x) => typeof x === 'string').join(': ')}`.slice(
          0,
          500,
        );
      let named = false;
      if (e.context && typeof e.context === 'object')
        for (const v of Object.values(e.context as Record<string, unknown>))
          for (const id of Array.isArray(v) ? v : [v]) {
            const hits = typeof id === 'string' ? (byId.get(id) ?? byId.get(id.toLowerCase())) : undefined;
            for (const i of hits ?? []) {
              itemErrors.set(i, why);
              named = true;
            }
          }
      if (!named) unnamed ??= why;
    }
    // an error naming no record: those the results do not confirm are not known to be upserted
    if (unnamed) {
      const confirmed = new Set<string>();
      try {
        const b = JSON.parse(a.body) as { results?: Array<{ properties?: Record<string, unknown> }> };
        for (const r of b.results ?? []) {
          const v = r.properties?.[cfg.idProperty];
          if (typeof v === 'string') confirmed.add(v.toLowerCase());
        }
      } catch {}
      inputs.forEach((c, k) => {
        if (!confirmed.has(c.id.toLowerCase()) && !itemErrors.has(indexOf[k]!))
          itemErrors.set(indexOf[k]!, unnamed!);
      });
    }
    return { ...base, ok: true, retriable: false, itemErrors, ...hold };
  }
  if (a.status >= 200 && a.status < 300) return { ...base, ok: true, retriable: false, itemErrors, ...hold };
  const message = `HubSpot ${a.status}: ${hubspotMessage(a)}`;
  if (a.status === 429) {
    const wait = parseRetryAfter(header(a.headers, 'retry-after'), cfg.now) ?? windowMs(a.headers);
    return {
      ...base,
      ok: false,
      retriable: true,
      rateLimited: true,
      error: message,
      retryAfterMs: wait,
      holdMs: wait,
    };
  }
  if (a.status === 401 || a.status === 403)
    return { ...base, ok: false, retriable: false, tripsBreaker: true, error: message };
  const retriable = a.status === 408 || a.status >= 500;
  return { ...base, ok: false, retriable, error: message, ...hold };
}
