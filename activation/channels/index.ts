import type { ChannelsConfig } from '../../runtime/config.ts';
import type { GuardPolicy } from '../webhook/address-guard.ts';
import type { Channels } from './channel.ts';
import { emailChannel } from './email.ts';
import { pushChannel } from './push.ts';
import { smsChannel } from './sms.ts';
import { webhookChannel } from './webhook.ts';

export type { Channel, Channels, SendRequest, SendResult } from './channel.ts';

export function createChannels(cfg: ChannelsConfig, webhook: GuardPolicy & { timeoutMs: number }): Channels {
  return {
    webhook: webhookChannel(webhook),
    email: emailChannel({ ...cfg.email, timeoutMs: cfg.timeoutMs }),
    sms: smsChannel({ ...cfg.sms, timeoutMs: cfg.timeoutMs }),
    push: pushChannel({ ...cfg.push, timeoutMs: cfg.timeoutMs }),
  };
}
