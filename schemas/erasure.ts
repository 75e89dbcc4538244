// Erasure jobs and tombstones, as the query service writes them and the history sink and
// activation read them (keys in redis-keys.ts).
//
// A tombstone says "this identifier (or profile id) was erased at T": a member of the
// workspace's sorted set `erased`, scored by the erasure time (ms). The member is the SHA-1
// hex of `<kind>:<value>` (kind = user | anon | email | ext.<type> | profile), never the
// identifier itself, so the tombstones do not keep what was erased readable. Lua computes
// the same digest with redis.sha1hex.
import { createHash } from 'node:crypto';

/** How long tombstones are kept: beyond any topic retention an in-flight event can outlive. */
export const TOMBSTONE_RETENTION_MS = 30 * 24 * 3600 * 1000;

/** Readers that cache the tombstones (the history sink) re-read them at least this often. */
export const TOMBSTONE_REFRESH_MS = 1000;

export type TombstoneKind = 'user' | 'anon' | 'email' | 'profile' | `ext.${string}`;

export function tombstoneMember(kind: TombstoneKind, value: string): string {
  return createHash('sha1').update(`${kind}:${value}`).digest('hex');
}

/** The steps of an erasure, in order; each is idempotent and recorded once done. */
export const ERASURE_STEPS = [
  /** Redis state of the person and of every profile merged into it, tombstones (one Lua call). */
  'redis',
  /** Delayed sends and windowed-rule timers of those profile ids (keys outside the workspace slot). */
  'scheduled',
  'events',
  'identity_links',
  'segment_membership_history',
  'activation_ledger',
  /** Consent history, when the table exists. */
  'consent_log',
  /** Journey runs of those profile ids ended (counted as erased), and their journey_steps rows. */
  'journeys',
  /** Rows that were on their way into ClickHouse while the steps above ran, deleted again. */
  'sweep',
  'audit',
] as const;
export type ErasureStep = (typeof ERASURE_STEPS)[number];

export type ErasureStatus = 'pending' | 'done';

/** An erasure job as the API shows it: never the erased identifiers, only counts. */
export interface ErasureJob {
  id: string;
  workspaceId: string;
  profileId: string;
  status: ErasureStatus;
  /** The steps done so far. */
  done: ErasureStep[];
  /** How much was erased, per kind of data (identities, profiles, events, rows per table). */
  counts: Record<string, number>;
  requestedBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  attempts: number;
  /** The last failure (a step that will be retried), or null. */
  lastError: string | null;
  /** When the worker tries again (pending jobs only). */
  nextAttemptAt: string | null;
}
