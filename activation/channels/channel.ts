// One interface over every channel. An adapter finds the recipient in the profile's traits,
// renders its content and hands it to its provider; the pipeline decides what the result
// means (sent, retry, dead letter).
import type { CampaignDefinition, ChannelName } from '../../schemas/campaign.ts';
import {
  MESSAGE_RENDER_BUDGET_MS,
  RenderBudgetError,
  renderBudget,
  type TemplateFormat,
} from '../../schemas/liquid-template.ts';
import type { SegmentChange } from '../../schemas/segment-change.ts';

export interface SendResult {
  ok: boolean;
  /** HTTP or SMTP status; 0 when no answer came. */
  status: number;
  /** Transient (5xx, 429, timeouts, connection errors): try again later. */
  retriable: boolean;
  error?: string;
  /** Time spent in the provider call. */
  latencyMs: number;
  /** The provider's id for the message, when it gives one. */
  providerId?: string;
  /** The provider says the recipient is gone for good (an unregistered device token). */
  invalidRecipient?: boolean;
  /** How long the provider asked us to wait before trying again (its Retry-After), capped. */
  retryAfterMs?: number;
  /** Push to a profile's devices: how many have the message (this and earlier attempts). */
  delivered?: number;
  /** Push to a profile's devices: how many the provider called gone, taken off the profile. */
  removed?: number;
}

/** A push device of a profile (profiles/apply-event.lua keeps them, activation/push-devices.ts reads them). */
export interface PushDevice {
  /** `i:<device id>`, or `t:<token>` for a device registered without an id. */
  key: string;
  token: string;
  /** `context.device.type` as the SDK sent it, lower-cased (ios, android, ...), or `other`. */
  type: string;
  /** Event time (ms) of its latest registration. */
  seenMs: number;
}

/** The devices a push send goes to, and where it records what each answered. */
export interface PushTargets {
  list: PushDevice[];
  /** Device keys an earlier attempt of this send reached: not sent to again. */
  done: ReadonlySet<string>;
  /** Records devices reached, for the next attempt of this send. */
  delivered(keys: string[]): Promise<void>;
  /** Takes a device whose token the provider called gone off the profile. */
  invalid(device: PushDevice): Promise<void>;
}

export interface SendRequest {
  campaign: CampaignDefinition;
  change: SegmentChange;
  /** Deterministic per send; the provider idempotency key where it has one. */
  sendKey: string;
  recipient: string;
  /** Push: the profile's devices this channel can reach (absent: the recipient token only). */
  devices?: PushTargets;
  /** Signed one-click unsubscribe link for this profile, channel and purpose. */
  unsubscribeUrl: string;
  nowMs: number;
  /** The caller's trace context for this hop (W3C traceparent), when the event carried one. */
  traceparent?: string;
}

export interface Channel {
  readonly name: ChannelName;
  /** Where to send for this profile (email, phone, device token, URL), or undefined if it has none. */
  recipient(campaign: CampaignDefinition, change: SegmentChange): string | undefined;
  /** Push: which of a profile's devices this channel's provider can reach. */
  devicesFor?(devices: PushDevice[], workspaceId: string): PushDevice[];
  send(req: SendRequest): Promise<SendResult>;
  close?(): Promise<void>;
}

export type Channels = Record<ChannelName, Channel>;

/** Retriable HTTP statuses: timeouts, rate limits and server errors. */
export const retriableStatus = (status: number) => status === 408 || status === 429 || status >= 500;

/** The longest wait a Retry-After can ask for: a hostile or broken answer cannot park a send for days. */
export const MAX_RETRY_AFTER_MS = 6 * 60 * 60 * 1000;

/**
 * A Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as milliseconds from
 * `nowMs`, capped at MAX_RETRY_AFTER_MS; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  let ms: number;
  if (/^\d{1,10}$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    if (!Number.isFinite(at) || !/[a-z]/i.test(v)) return undefined;
    ms = at - nowMs;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

export function stringTrait(traits: Record<string, unknown>, name: string): string | undefined {
  const v = traits[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** POSTs to a provider API with a deadline; network errors and timeouts are retriable. */
export async function postProvider(
  url: string,
  init: { headers: Record<string, string>; body: string; timeoutMs: number },
): Promise<SendResult & { body: string }> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: init.headers,
      body: init.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(init.timeoutMs),
    });
    const body = await res.text();
    const ok = res.status >= 200 && res.status < 300;
    const retryAfterMs = ok ? undefined : parseRetryAfter(res.headers.get('retry-after'), Date.now());
    return {
      ok,
      status: res.status,
      retriable: !ok && retriableStatus(res.status),
      error: ok ? undefined : `HTTP ${res.status}: ${body.slice(0, 200)}`,
      latencyMs: ms(),
      body,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  } catch (err) {
    const e = err as Error;
    return { ok: false, status: 0, retriable: true, error: e.message, latencyMs: ms(), body: '' };
  }
}

/** A send that cannot be attempted (settings or content missing): final, never retried. */
export const refused = (error: string): SendResult => ({
  ok: false,
  status: 0,
  retriable: false,
  error,
  latencyMs: 0,
});

/**
 * Renders each named template over the request's scope (as plain text unless `formats` names
 * it HTML, whose outputs are escaped); a template error refuses the send. The fields share one
 * render budget (MESSAGE_RENDER_BUDGET_MS, each at most RENDER_LIMIT_MS): a message that runs
 * out is refused (a permanent failure) naming the field that ran out.
 */
export async function renderTemplates<K extends string>(
  templates: Record<K, string>,
  req: SendRequest,
  formats: Partial<Record<K, TemplateFormat>> = {},
  opts: { budgetMs?: number; now?: () => number } = {},
): Promise<{ text: Record<K, string> } | { refused: SendResult }> {
  const scope = templateScope(req);
  const text = {} as Record<K, string>;
  const budget = renderBudget(opts.budgetMs ?? MESSAGE_RENDER_BUDGET_MS, { now: opts.now });
  for (const k of Object.keys(templates) as K[]) {
    try {
      // an empty field (an email without html) costs nothing and is not rendered
      text[k] = templates[k] === '' ? '' : await budget.render(k, templates[k], scope, formats[k] ?? 'text');
    } catch (err) {
      if (err instanceof RenderBudgetError) return { refused: refused(`template ${err.message}`) };
      return { refused: refused(`template: ${(err as Error).message}`) };
    }
  }
  return { text };
}

/** A provider's answer as a SendResult, with its message id read from a JSON body field. */
export function providerResult(r: SendResult & { body: string }, idField: string): SendResult {
  let providerId: string | undefined;
  try {
    const id = r.ok ? (JSON.parse(r.body) as Record<string, unknown>)[idField] : undefined;
    providerId = typeof id === 'string' ? id : undefined;
  } catch {}
  return {
    ok: r.ok,
    status: r.status,
    retriable: r.retriable,
    error: r.error,
    latencyMs: r.latencyMs,
    providerId,
    ...(r.retryAfterMs !== undefined ? { retryAfterMs: r.retryAfterMs } : {}),
  };
}

/** What templates see: traits, the triggering change, the profile, the campaign. */
export function templateScope(req: SendRequest): Record<string, unknown> {
  const { change, campaign } = req;
  return {
    traits: change.traits,
    profile: { id: change.profileId, userId: change.userId },
    event: {
      type: change.type === 'entered' ? 'segment.entered' : 'segment.exited',
      segmentId: change.segmentId,
      occurredAt: change.occurredAt,
      messageId: change.messageId,
    },
    campaign: { id: campaign.id, name: campaign.name },
    unsubscribe_url: req.unsubscribeUrl,
  };
}
