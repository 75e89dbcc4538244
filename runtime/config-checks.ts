// Settings that are each valid alone but unsafe together. A deployment that other machines
// can reach (a listener not on loopback) or that says it is production must not run on the
// public development keys, short keys, a secret derived from the admin key, or with
// webhooks allowed into its own loopback; and no send may outlive the claim that guards it.
// Pure: the environment in, the problems (each naming its variable) out.

/** The development keys: published in the README, so never a secret. */
export const DEV_WRITE_KEY = 'dev-write-key';
export const DEV_ADMIN_KEY = 'dev-admin-key';
/** Shortest key or secret accepted where the service is exposed. */
export const MIN_SECRET_LENGTH = 32;

export interface ExposureEnv {
  NODE_ENV: string;
  CDP_INGEST_HOST: string;
  CDP_QUERY_HOST: string;
  CDP_WRITE_KEY?: string;
  CDP_ADMIN_KEY?: string;
  CDP_UNSUBSCRIBE_SECRET?: string;
  CDP_WEBHOOK_ALLOW_LOOPBACK?: string;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase();
  return h === 'localhost' || h === '::1' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Why the strict rules apply, or undefined when the service is local development only. */
export function exposure(e: ExposureEnv): string | undefined {
  const open = (
    [
      ['CDP_INGEST_HOST', e.CDP_INGEST_HOST],
      ['CDP_QUERY_HOST', e.CDP_QUERY_HOST],
    ] as const
  ).filter(([, host]) => !isLoopbackHost(host));
  if (open.length > 0)
    return `when listening beyond loopback (${open.map(([n, h]) => `${n}=${h}`).join(', ')})`;
  if (e.NODE_ENV === 'production') return 'when NODE_ENV=production';
  return undefined;
}

export function exposureProblems(e: ExposureEnv): string[] {
  const why = exposure(e);
  if (!why) return [];
  const production = e.NODE_ENV === 'production';
  const problems: string[] = [];
  const secret = (name: string, value: string | undefined, dev?: string) => {
    // a missing key in production is reported by the production check already
    if (value === undefined) {
      if (!production || name === 'CDP_UNSUBSCRIBE_SECRET')
        problems.push(`${name}: required ${why} (a random value of ${MIN_SECRET_LENGTH}+ characters)`);
    } else if (value === dev)
      problems.push(`${name}: the public development key is refused ${why}; set a random key`);
    else if (value.length < MIN_SECRET_LENGTH)
      // the value itself is a secret: only its length is named
      problems.push(`${name}: ${value.length} characters; at least ${MIN_SECRET_LENGTH} are required ${why}`);
  };
  secret('CDP_WRITE_KEY', e.CDP_WRITE_KEY, DEV_WRITE_KEY);
  secret('CDP_ADMIN_KEY', e.CDP_ADMIN_KEY, DEV_ADMIN_KEY);
  secret('CDP_UNSUBSCRIBE_SECRET', e.CDP_UNSUBSCRIBE_SECRET);
  if (e.CDP_UNSUBSCRIBE_SECRET !== undefined && e.CDP_UNSUBSCRIBE_SECRET === e.CDP_ADMIN_KEY)
    problems.push('CDP_UNSUBSCRIBE_SECRET: must differ from CDP_ADMIN_KEY');
  if (e.CDP_WEBHOOK_ALLOW_LOOPBACK === 'true')
    problems.push(
      `CDP_WEBHOOK_ALLOW_LOOPBACK: true is refused ${why} (webhooks could reach this host's own services)`,
    );
  return problems;
}

export interface DeadlineEnv {
  CDP_WEBHOOK_TIMEOUT_MS: number;
  CDP_CHANNEL_TIMEOUT_MS: number;
  CDP_ACTIVATION_CLAIM_LEASE_MS: number;
}

/**
 * A send runs under a claim whose lease lets another worker send again once it ends (the
 * crash case); a send still running then would be sent twice. Every provider call's
 * deadline must therefore end before the lease does.
 */
export function deadlineProblems(e: DeadlineEnv): string[] {
  const lease = e.CDP_ACTIVATION_CLAIM_LEASE_MS;
  return (['CDP_WEBHOOK_TIMEOUT_MS', 'CDP_CHANNEL_TIMEOUT_MS'] as const)
    .filter((name) => e[name] >= lease)
    .map(
      (name) =>
        `${name}: ${e[name]} ms must be shorter than CDP_ACTIVATION_CLAIM_LEASE_MS (${lease} ms), or a send still under way when its claim expires can be sent again`,
    );
}
