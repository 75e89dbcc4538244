// Consent and suppression entries as both the query API (writes) and activation (reads)
// store them in Redis (keys in redis-keys.ts).

export type SuppressionKind = 'email' | 'phone' | 'profileId' | 'device';

/** The set member for a suppressed address: emails lowercased, phones reduced to + and digits. */
export function suppressionMember(kind: SuppressionKind, value: string): string {
  switch (kind) {
    case 'email':
      return `email:${value.trim().toLowerCase()}`;
    case 'phone':
      return `phone:${value.replace(/[^0-9+]/g, '')}`;
    case 'profileId':
      return `profile:${value}`;
    case 'device':
      // a push token the provider called gone (unregistered): never tried again
      return `device:${value.trim()}`;
    default: {
      const never: never = kind;
      throw new Error(`unknown suppression kind ${String(never)}`);
    }
  }
}

export function parseSuppressionMember(member: string): { kind: SuppressionKind; value: string } {
  const i = member.indexOf(':');
  const k = member.slice(0, i);
  return { kind: k === 'profile' ? 'profileId' : (k as SuppressionKind), value: member.slice(i + 1) };
}

/** Consent hash field: channel (or `*`) and purpose (or `*`). */
export const consentField = (channel: string, purpose: string) => `${channel}:${purpose}`;

/**
 * A consent decision's state: `subscribed`, `revoked`, or `pending` (a grant waiting for the
 * person to confirm it by a double opt-in link: not subscribed, the contact policy blocks it).
 */
export type ConsentStatus = 'subscribed' | 'revoked' | 'pending';

/** Consent hash value: `granted|revoked|pending:<epoch ms>:<source>`. */
export const consentValue = (subscribed: boolean, atMs: number, source: string, pending = false) =>
  `${pending ? 'pending' : subscribed ? 'granted' : 'revoked'}:${atMs}:${source}`;

export function parseConsentValue(v: string): {
  subscribed: boolean;
  status: ConsentStatus;
  updatedAt: string;
  source: string;
} {
  const [state, ms, ...source] = v.split(':');
  return {
    subscribed: state === 'granted',
    status: state === 'granted' ? 'subscribed' : state === 'pending' ? 'pending' : 'revoked',
    updatedAt: new Date(Number(ms)).toISOString(),
    source: source.join(':'),
  };
}
