// Push channel, to the device token in a trait (`pushToken` unless the campaign names another):
// - FCM HTTP v1 with a service account (CDP_PUSH_FCM_SERVICE_ACCOUNT): OAuth access tokens
//   from the JWT bearer grant, cached and renewed before they expire (google-oauth.ts);
// - APNs over HTTP/2 with a provider token (apns.ts), for apps that talk to Apple directly;
// - a static bearer token (CDP_PUSH_TOKEN), only for emulators and local stand-ins.
// A token the provider says is gone (FCM UNREGISTERED, APNs BadDeviceToken / Unregistered)
// is a permanent failure marked `invalidRecipient`: activation puts it on the suppression
// list, so it is not tried again. Neither provider has an idempotency key: a crash between
// the provider's answer and the claim's `sent` can repeat a notification (the send key is in
// the payload's data / apns-id, for the app to drop a repeat).
import { type ApnsAnswer, ApnsClient } from './apns.ts';
import type { Channel, SendResult } from './channel.ts';
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
  return {
    name: 'push',
    recipient: (c, change) => stringTrait(change.traits, c.push?.tokenTrait ?? 'pushToken'),
    async send(req) {
      const s = req.campaign.push;
      if (!s) return refused('no push settings');
      const r = await renderTemplates({ title: s.title, body: s.body }, req);
      if ('refused' in r) return r.refused;
      return send.send(req.recipient, r.text, { ...s.data, sendKey: req.sendKey }, req.sendKey);
    },
    close: async () => send.close?.(),
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
      const body = JSON.stringify({ message: { token, notification, data } });
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
        answer = await client.send(token, { aps: { alert: notification }, ...data }, sendKey);
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
