import type { ChannelsConfig } from '../../runtime/config.ts';
import type { Logger } from '../../runtime/log.ts';
import type { GuardPolicy } from '../webhook/address-guard.ts';
import type { Channels } from './channel.ts';
import { emailChannel } from './email.ts';
import { pushChannel } from './push.ts';
import { smsChannel } from './sms.ts';
import { webhookChannel } from './webhook.ts';
import {
  type CredentialWatcher,
  channelForCredentials,
  withWorkspaceCredentials,
} from './workspace-channels.ts';

export type { Channel, Channels, SendRequest, SendResult } from './channel.ts';

/**
 * The deployment's channels (CDP_* env); with `workspaces`, email, SMS and push send with a
 * workspace's stored credentials where it has them (workspace-channels.ts).
 */
export function createChannels(
  cfg: ChannelsConfig,
  webhook: GuardPolicy & { timeoutMs: number },
  workspaces?: { credentials: CredentialWatcher; log: Logger },
): Channels {
  const defaults: Channels = {
    webhook: webhookChannel(webhook),
    email: emailChannel({ ...cfg.email, timeoutMs: cfg.timeoutMs }),
    sms: smsChannel({ ...cfg.sms, timeoutMs: cfg.timeoutMs }),
    push: pushChannel({ ...cfg.push, timeoutMs: cfg.timeoutMs }),
  };
  if (!workspaces) return defaults;
  return withWorkspaceCredentials(
    defaults,
    workspaces.credentials,
    (c) => channelForCredentials(cfg, c, webhook),
    {
      // a replaced channel stays open for the sends under way on it
      retireAfterMs: 2 * cfg.timeoutMs + 1000,
      log: workspaces.log,
    },
  );
}
