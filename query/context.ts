// What the query API's app and its route files share: the request context (workspace, key,
// principal), the dependencies routes are built from, the workspace header, and reading a JSON
// body. Route files import from here, never from app.ts (which imports them).

import type { AuthFailureLimiter } from '../runtime/auth-failures.ts';
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import type { ClientKeysMode } from '../runtime/config.ts';
import type { DefinitionStore } from '../runtime/definitions.ts';
import type { Admin, Producer } from '../runtime/kafka/types.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import type { Keyring } from '../runtime/secrets-key.ts';
import type { Person, Role, WorkspaceStore } from '../runtime/workspaces.ts';
import type { WriteKeyStore } from '../runtime/write-keys.ts';
import type { AnalyticsLimits } from './analytics/run-query.ts';
import type { DoubleOptIn } from './double-opt-in.ts';
import { QueryError } from './query-error.ts';

/** Who a request acts for: the deployment's admin key, or a person with a role in the workspace. */
export type Principal =
  | { kind: 'root' }
  | { kind: 'person'; person: Person; roles: Map<string, Role>; role?: Role };

export type QueryEnv = { Variables: { workspaceId: string; apiKey: string; principal: Principal } };

/** The header a caller names its workspace in (people in several, or the admin key acting in another). */
export const WORKSPACE_HEADER = 'x-workspace';

/** Resolves an admin key to its workspace; undefined for unknown keys. */
export type AdminKeyResolver = (key: string) => string | undefined;

export interface QueryDeps {
  redis: Redis;
  clickhouse: ClickHouseClient;
  defs: DefinitionStore;
  writeKeys: WriteKeyStore;
  redisPrefix: string;
  resolveAdminKey: AdminKeyResolver;
  /** Workspaces, people and their tokens; none: a store on `redis` without a built-in workspace. */
  workspaces?: WorkspaceStore;
  /** Verifies unsubscribe links (CDP_UNSUBSCRIBE_SECRET). */
  unsubscribeSecret: string;
  /** Where visitors reach the ingest host (CDP_INGEST_PUBLIC_URL): the console's embed codes and page links. */
  ingestPublicUrl?: string;
  log: Logger;
  /** Limits of the analytics routes (CDP_ANALYTICS_*). */
  analytics?: AnalyticsLimits;
  /** How often live streams (GET /v1/live/*) re-read their data; default 1000 ms. */
  livePollMs?: number;
  /** Failed admin authentications per client address (CDP_ADMIN_AUTH_MAX_FAILURES); none: unlimited. */
  adminAuthFailures?: AuthFailureLimiter;
  /** Kafka admin and topic prefix, for consumer lag in GET /v1/live/pipeline. */
  kafkaAdmin?: Admin;
  topicPrefix?: string;
  /** What client write keys may change on a known person where a workspace has not chosen (CDP_CLIENT_KEYS). */
  clientKeysDefault?: ClientKeysMode;
  /** When an erasure's sweep runs after its Redis step (query/erasure-job.ts); default 10 s. */
  erasureSweepDelayMs?: number;
  /** Replays of quarantined events (POST /v1/tracking-plan/replay) send with it; none: 503. */
  producer?: Producer;
  /** Data exports (query/exports.ts): where files go, how long they stay, the engine; none: no /v1/exports. */
  exports?: { dir: string; ttlMs: number; engine: 'chdb' | 'server'; sliceRows?: number };
  /**
   * Bulk imports (query/imports/): where uploads wait, the largest taken, a signal that stops
   * imports under way (they resume elsewhere); with a producer, /v1/imports.
   */
  imports?: {
    dir: string;
    maxBytes: number;
    /** Uploads received at once per workspace by this process (default 2). */
    maxUploads?: number;
    signal?: AbortSignal;
    batchRows?: number;
    profileWaitMs?: number;
  };
  /** Double opt-in (query/double-opt-in.ts): the consent API's `confirm: true`. */
  optIn?: DoubleOptIn;
  /** Seals per-workspace channel credentials (CDP_SECRETS_KEY); none: PUT answers 503. */
  secrets?: Keyring;
  /**
   * Literal addresses a destination URL may name (CDP_WEBHOOK_ALLOW_LOOPBACK / _PRIVATE, as
   * for webhooks); none: loopback and private addresses are refused.
   */
  destinationAddressPolicy?: { allowLoopback: boolean; allowPrivate: boolean };
  now?: () => Date;
}

/** How deeply a request body's objects and arrays may nest; deeper is refused before parsing. */
export const MAX_JSON_DEPTH = 100;

/** The deepest nesting of `[` and `{` in JSON text (outside strings), stopping past `limit`. */
export function jsonDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c)
        i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      depth++;
      if (depth > max) max = depth;
      if (max > limit) return max;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return max;
}

/**
 * Reads a request's JSON body: refuses another content type, malformed JSON and nesting deeper
 * than MAX_JSON_DEPTH (a 1 MiB body can nest half a million levels, which would overflow the
 * stack of whatever walks it later) with a 400. Size is bounded by the app's body limit.
 */
export async function readJson(req: Request): Promise<unknown> {
  const type = (req.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new QueryError(400, 'send the body as application/json');
  const text = await req.text();
  if (jsonDepth(text) > MAX_JSON_DEPTH)
    throw new QueryError(400, `body: nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new QueryError(400, `malformed JSON: ${(err as Error).message}`);
  }
}
