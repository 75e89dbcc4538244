// The claim on a send key (WorkspaceKeys.sendClaim), a small state machine in Redis:
//   (none) → claimed (with a lease) → done:sent | done:suppressed
//   claimed → (none) when the attempt failed (a retry or a replay claims again)
//   claimed → (none) when the lease runs out: the worker died mid-send
// A redelivered change finds `done:*` and does nothing; one that finds a live claim waits
// for the lease (another worker is sending it, or died doing so). A resend after a crash
// carries the same send key, which is the provider idempotency key / webhook-id.
// The usual path takes the claim inside contact-policy.lua (one round trip per send).
import type { Redis } from '../runtime/redis.ts';
import { redisScript } from './policy/script.ts';

const CLAIM = `
local v = redis.call('GET', KEYS[1])
if v then
  if string.sub(v, 1, 5) == 'done:' then return { 'done', v } end
  return { 'busy', tostring(redis.call('PTTL', KEYS[1])) }
end
redis.call('SET', KEYS[1], 'claimed:' .. ARGV[1], 'PX', ARGV[2])
return { 'claimed', '' }`;

/** Releases only our own claim (a claim that expired may have been taken by another worker). */
const RELEASE = `
if redis.call('GET', KEYS[1]) == 'claimed:' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const FINISH = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 5) == 'done:' then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1`;

export type ClaimResult =
  | { kind: 'claimed' }
  | { kind: 'done'; state: string }
  | { kind: 'busy'; retryInMs: number };

export const DONE_TTL_SECONDS = 90 * 24 * 3600;

export function sendClaims(redis: Redis, owner: string, leaseMs: number) {
  const claim = redisScript(redis, 'cdpClaimSend', 1, CLAIM);
  const release = redisScript(redis, 'cdpReleaseSend', 1, RELEASE);
  const finish = redisScript(redis, 'cdpFinishSend', 1, FINISH);
  return {
    /** What contact-policy.lua needs to take a claim in the same step. */
    lease: (key: string) => ({ key, owner, leaseMs, doneTtlSeconds: DONE_TTL_SECONDS }),
    async claim(key: string): Promise<ClaimResult> {
      const [kind, v] = (await claim(key, owner, leaseMs)) as [string, string];
      if (kind === 'claimed') return { kind: 'claimed' };
      if (kind === 'done') return { kind: 'done', state: v.slice(5) };
      return { kind: 'busy', retryInMs: Math.max(0, Number(v)) };
    },
    release: async (key: string) => void (await release(key, owner)),
    finish: async (key: string, state: 'sent' | 'suppressed') =>
      void (await finish(key, owner, `done:${state}`, DONE_TTL_SECONDS)),
  };
}
export type SendClaims = ReturnType<typeof sendClaims>;
