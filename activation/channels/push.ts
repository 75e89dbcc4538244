// Push channel, to every device of the profile that the provider can reach (the tokens the
// mobile SDKs send in `context.device.token`, kept per device by the processor; see
// activation/push-devices.ts), or, for a profile with none, to the device token in a trait
// (`pushToken` unless the campaign names another):
// - FCM HTTP v1 with a service account (CDP_PUSH_FCM_SERVICE_ACCOUNT): OAuth access tokens
//   from the JWT bearer grant, cached and renewed before they expire (google-oauth.ts);
// - APNs over HTTP/2 with a provider token (apns.ts), for apps that talk to Apple directly;
// - a static bearer token (CDP_PUSH_TOKEN), only for emulators and local stand-ins.
// A device token the provider says is gone (FCM UNREGISTERED, APNs BadDeviceToken /
// Unregistered) leaves the profile at once; a trait token that is gone is a permanent failure
// marked `invalidRecipient`, which activation puts on the suppression list. To devices: the
// send is ok when every device answered and at least one took it; a device that failed
// transiently makes it retriable, and the devices reached are recorded (per send key) so the
// retry goes only to the rest. Neither provider has an idempotency key: a crash between a
// provider's answer and that record (or the claim's `sent`) can repeat a notification (the
// send key is in the payload's data, and the apns-id is fixed per send and device, for the
// app to drop a repeat).
import { type ApnsAnswer, ApnsClient } from './apns.ts';
import type { Channel, PushDevice, PushTargets, SendResult } from './channel.ts';
import {
  postProvider,
  providerResult,
  refused,
  renderTemplates,
  retriableStatus,
  stringTrait,
} from './channel.ts';
import { FCM_SCOPE, GoogleTokenSource, parseServiceAccount, TokenError } from './google-oauth.ts';

export interface PushConfig {
  provider: 'fcm' | 'apns';
  baseUrl: string;
  project: string;
  /** Static bearer token (emulators, stand-ins); ignored when a service account is set. */
  token: string;
  /** A service account key (JSON or the path of its file). */
  serviceAccount?: string;
  apns?: { url: string; teamId: string; keyId: string; key: string; topic: string };
  timeoutMs: number;
  now?: () => number;
}

export function pushChannel(cfg: PushConfig): Channel {
  const send = cfg.provider === 'apns' ? apnsSender(cfg) : fcmSender(cfg);
  const canReach = cfg.provider === 'apns' ? apnsCanReach : fcmCanReach;
  return {
    name: 'push',
    recipient: (c, change) => stringTrait(change.traits, c.push?.tokenTrait ?? 'pushToken'),
    devicesFor: (devices) => devices.filter(canReach),
    async send(req) {
      const s = req.campaign.push;
      if (!s) return refused('no push settings');
      const r = await renderTemplates({ title: s.title, body: s.body }, req);
      if ('refused' in r) return r.refused;
      const data = { ...s.data, sendKey: req.sendKey };
      const t = req.devices;
      if (t) {
        // filtered again: a wrapper of this channel may not have passed devicesFor on
        const list = t.list.filter(canReach);
        if (list.length > 0) return toDevices(send, { ...t, list }, r.text, data, req.sendKey);
        if (t.list.some((d) => d.token === req.recipient))
          return refused(`no device of the profile is one ${cfg.provider} can reach`);
      }
      return send.send(req.recipient, r.text, data, req.sendKey);
    },
    close: async () => send.close?.(),
  };
}

const APPLE = new Set(['ios', 'ipados', 'tvos', 'watchos', 'macos']);
/** APNs reaches Apple devices only. */
const apnsCanReach = (d: PushDevice) => APPLE.has(d.type);
/** FCM reaches Android and Apple devices by their FCM registration tokens, not by a raw APNs token (64 hex). */
const fcmCanReach = (d: PushDevice) => !/^[0-9a-f]{64}$/i.test(d.token);

/**
 * One notification to each device not reached yet by this send, at once (at most 20). Gone
 * tokens leave the profile; if any device failed transiently, the ones reached are recorded
 * and the result is retriable; otherwise ok if any device has it.
 */
async function toDevices(
  sender: Sender,
  t: PushTargets,
  notification: { title: string; body: string },
  data: Record<string, string>,
  sendKey: string,
): Promise<SendResult> {
  const todo = t.list.filter((d) => !t.done.has(d.key));
  // the apns-id is fixed per send and device: a repeat to a device carries the same one
  const answers = await Promise.all(
    todo.map(async (d) => ({ d, r: await sender.send(d.token, notification, data, `${sendKey}/${d.key}`) })),
  );
  const ok = answers.filter((a) => a.r.ok);
  const gone = answers.filter((a) => !a.r.ok && a.r.invalidRecipient);
  const again = answers.filter((a) => !a.r.ok && !a.r.invalidRecipient && a.r.retriable);
  const failed = answers.filter((a) => !a.r.ok && !a.r.invalidRecipient && !a.r.retriable);
  for (const a of gone) await t.invalid(a.d);
  const delivered = t.done.size + ok.length;
  const removed = gone.length;
  const latencyMs = Math.max(0, ...answers.map((a) => a.r.latencyMs));
  const of = `${answers.length} device(s)`;
  if (again.length > 0) {
    if (ok.length > 0) await t.delivered(ok.map((a) => a.d.key));
    const first = again[0]!.r;
    const wait = Math.max(0, ...again.map((a) => a.r.retryAfterMs ?? 0));
    return {
      ok: false,
      status: first.status,
      retriable: true,
      error: `${again.length} of ${of} to try again: ${first.error ?? `status ${first.status}`}`,
      latencyMs,
      delivered,
      removed,
      ...(wait > 0 ? { retryAfterMs: wait } : {}),
    };
  }
  if (delivered > 0) {
    const first = ok[0]?.r;
    return {
      ok: true,
      status: first?.status ?? 200,
      retriable: false,
      latencyMs,
      providerId: first?.providerId,
      delivered,
      removed,
    };
  }
  if (failed.length === 0 && removed > 0)
    return {
      ok: false,
      status: gone[0]!.r.status,
      retriable: false,
      error: `every device token is gone (${removed} taken off the profile): ${gone[0]!.r.error}`,
      latencyMs,
      invalidRecipient: true,
      delivered: 0,
      removed,
    };
  const first = failed[0]?.r;
  return {
    ok: false,
    status: first?.status ?? 0,
    retriable: false,
    error: `${failed.length} of ${of} failed: ${first?.error ?? 'no device to send to'}`,
    latencyMs,
    delivered: 0,
    removed,
  };
}

interface Sender {
  send(
    token: string,
    notification: { title: string; body: string },
    data: Record<string, string>,
    sendKey: string,
  ): Promise<SendResult>;
  close?(): void;
}

function fcmSender(cfg: PushConfig): Sender {
  const sa = cfg.serviceAccount ? parseServiceAccount(cfg.serviceAccount) : undefined;
  const project = cfg.project || sa?.project_id || '';
  const tokens = sa
    ? new GoogleTokenSource(sa, FCM_SCOPE, { now: cfg.now ?? Date.now, timeoutMs: cfg.timeoutMs })
    : undefined;
  const url = `${cfg.baseUrl.replace(/\/$/, '')}/v1/projects/${encodeURIComponent(project)}/messages:send`;
  const once = async (bearer: string, body: string) =>
    postProvider(url, {
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body,
      timeoutMs: cfg.timeoutMs,
    });
  return {
    async send(token, notification, data) {
      if (!project) return refused('no FCM project: set CDP_PUSH_PROJECT or a service account');
      if (!tokens && !cfg.token) return refused('no FCM credentials: set CDP_PUSH_FCM_SERVICE_ACCOUNT');
      // the send key as collapse key and tag: a repeat of the send (a retry after a crash)
      // replaces the notification it repeats on the device instead of showing twice
      const collapse = data.sendKey;
      const body = JSON.stringify({
        message: {
          token,
          notification,
          data,
          ...(collapse
            ? {
                android: { collapse_key: collapse, notification: { tag: collapse } },
                apns: { headers: { 'apns-collapse-id': collapse } },
              }
            : {}),
        },
      });
      let bearer: string;
      try {
        bearer = tokens ? await tokens.token() : cfg.token;
      } catch (err) {
        const status = err instanceof TokenError ? err.status : 0;
        return {
          ok: false,
          status,
          retriable: status === 0 || retriableStatus(status),
          error: `FCM credentials: ${(err as Error).message}`,
          latencyMs: 0,
        };
      }
      let answer = await once(bearer, body);
      if (answer.status === 401 && tokens) {
        // revoked or expired early: one new token, one more try
        tokens.invalidate(bearer);
        try {
          answer = await once(await tokens.token(), body);
        } catch {}
      }
      const result = providerResult(answer, 'name');
      if (!answer.ok) {
        const code = fcmErrorCode(answer.body);
        if (answer.status === 404 || code === 'UNREGISTERED')
          return { ...result, retriable: false, invalidRecipient: true };
        if (code === 'INVALID_ARGUMENT' && /registration token/i.test(answer.body))
          return { ...result, retriable: false, invalidRecipient: true };
      }
      return result;
    },
  };
}

/** FCM's error code: `error.details[].errorCode`, else `error.status`. */
function fcmErrorCode(body: string): string | undefined {
  try {
    const e = (JSON.parse(body) as { error?: { status?: unknown; details?: Array<{ errorCode?: unknown }> } })
      .error;
    const detail = e?.details?.find((d) => typeof d.errorCode === 'string')?.errorCode;
    return typeof detail === 'string' ? detail : typeof e?.status === 'string' ? e.status : undefined;
  } catch {
    return undefined;
  }
}

function apnsSender(cfg: PushConfig): Sender {
  const a = cfg.apns;
  const client =
    a?.teamId && a.keyId && a.key && a.topic
      ? new ApnsClient({
          baseUrl: a.url,
          teamId: a.teamId,
          keyId: a.keyId,
          key: a.key,
          topic: a.topic,
          timeoutMs: cfg.timeoutMs,
          now: cfg.now ?? Date.now,
        })
      : undefined;
  return {
    async send(token, notification, data, sendKey) {
      if (!client) return refused('APNs is not configured: CDP_PUSH_APNS_TEAM_ID, _KEY_ID, _KEY, _TOPIC');
      const started = performance.now();
      let answer: ApnsAnswer;
      try {
        answer = await client.send(token, { aps: { alert: notification }, ...data }, sendKey, data.sendKey);
      } catch (err) {
        return {
          ok: false,
          status: 0,
          retriable: true,
          error: (err as Error).message,
          latencyMs: Math.round(performance.now() - started),
        };
      }
      const latencyMs = Math.round(performance.now() - started);
      const ok = answer.status === 200;
      const gone =
        answer.status === 410 ||
        answer.reason === 'BadDeviceToken' ||
        answer.reason === 'Unregistered' ||
        answer.reason === 'DeviceTokenNotForTopic';
      return {
        ok,
        status: answer.status,
        retriable: !ok && !gone && retriableStatus(answer.status),
        error: ok ? undefined : `APNs ${answer.status}${answer.reason ? ` ${answer.reason}` : ''}`,
        latencyMs,
        providerId: ok ? answer.apnsId : undefined,
        ...(gone ? { invalidRecipient: true } : {}),
      };
    },
    close: () => client?.close(),
  };
}
