// Write keys: created and revoked through the query API, stored in Redis, and resolved by
// ingest from an in-memory copy refreshed when the key revision moves (so a revoked key
// stops working within the refresh interval, and ingest keeps its last copy if Redis is
// briefly unreachable). The key in the configuration (CDP_WRITE_KEY) is the bootstrap key
// of the default workspace and always valid.
//
// A key has a kind: `server` (kept secret on a backend; full power) or `client` (public, in
// a browser or app; what it may change on a known person is limited by the processor).
// Records stored before kinds existed have none and are server keys.
import { randomBytes } from 'node:crypto';
import { globalKeys } from '../schemas/redis-keys.ts';
import type { Logger } from './log.ts';
import type { Redis } from './redis.ts';
import { workspacesArchivedKey } from './workspaces.ts';

export const WRITE_KEY_KINDS = ['server', 'client'] as const;
export type WriteKeyKind = (typeof WRITE_KEY_KINDS)[number];

export interface WriteKeyRecord {
  id: string;
  key: string;
  workspaceId: string;
  name: string;
  /** Absent on records from before key kinds: those are server keys. */
  kind?: WriteKeyKind;
  createdAt: string;
  revokedAt: string | null;
}

/** What ingest needs of a key: its workspace and its kind. */
export interface ResolvedWriteKey {
  workspaceId: string;
  kind: WriteKeyKind;
}

/** A key as lists and the audit log show it: enough to recognise, not to use. */
export function maskWriteKey(key: string): string {
  return key.length <= 16 ? `${key.slice(0, 4)}…` : `${key.slice(0, 12)}…${key.slice(-4)}`;
}

export class WriteKeyStore {
  private readonly keys: ReturnType<typeof globalKeys>;
  private readonly archivedKey: string;
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = globalKeys(prefix);
    this.archivedKey = workspacesArchivedKey(prefix);
  }

  /** Workspaces archived (runtime/workspaces.ts): their keys no longer work. */
  async archivedWorkspaces(): Promise<Set<string>> {
    return new Set(await this.redis.smembers(this.archivedKey));
  }

  async create(
    workspaceId: string,
    name: string,
    now: Date,
    kind: WriteKeyKind = 'server',
  ): Promise<WriteKeyRecord> {
    const rec: WriteKeyRecord = {
      id: `wk_${randomBytes(6).toString('hex')}`,
      key: `wk_live_${randomBytes(18).toString('base64url')}`,
      workspaceId,
      name,
      kind,
      createdAt: now.toISOString(),
      revokedAt: null,
    };
    await this.redis
      .multi()
      .hset(this.keys.writeKeys, rec.key, JSON.stringify(rec))
      .incr(this.keys.writeKeysRevision)
      .exec();
    return rec;
  }

  async list(workspaceId?: string): Promise<WriteKeyRecord[]> {
    const all = Object.values(await this.redis.hgetall(this.keys.writeKeys)).map((v) => {
      const r = JSON.parse(v) as WriteKeyRecord;
      return { ...r, kind: r.kind === 'client' ? 'client' : 'server' } as WriteKeyRecord;
    });
    return all
      .filter((r) => !workspaceId || r.workspaceId === workspaceId)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** Marks a key revoked; returns the record before and after, or undefined if unknown. */
  async revoke(
    workspaceId: string,
    id: string,
    now: Date,
  ): Promise<[WriteKeyRecord, WriteKeyRecord] | undefined> {
    const rec = (await this.list(workspaceId)).find((r) => r.id === id);
    if (!rec) return undefined;
    const after = { ...rec, revokedAt: rec.revokedAt ?? now.toISOString() };
    await this.redis
      .multi()
      .hset(this.keys.writeKeys, rec.key, JSON.stringify(after))
      .incr(this.keys.writeKeysRevision)
      .exec();
    return [rec, after];
  }

  async revision(): Promise<string> {
    return (await this.redis.get(this.keys.writeKeysRevision)) ?? '0';
  }
}

/**
 * A synchronous key → (workspace, kind) lookup for the hot path, refreshed in the
 * background. Bootstrap keys (CDP_WRITE_KEY) are server keys.
 */
export function watchWriteKeys(opts: {
  store: WriteKeyStore;
  bootstrap: Map<string, string>;
  log: Logger;
  intervalMs?: number;
}): { resolve(key: string): ResolvedWriteKey | undefined; ready: Promise<void>; stop(): void } {
  const bootstrap = new Map<string, ResolvedWriteKey>(
    [...opts.bootstrap].map(([k, workspaceId]) => [k, { workspaceId, kind: 'server' }]),
  );
  let active = new Map<string, ResolvedWriteKey>();
  let seen: string | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let markReady!: () => void;
  const ready = new Promise<void>((r) => {
    markReady = r;
  });
  const tick = async () => {
    try {
      const rev = await opts.store.revision();
      if (rev !== seen) {
        const next = new Map<string, ResolvedWriteKey>();
        const archived = await opts.store.archivedWorkspaces();
        for (const r of await opts.store.list())
          if (!r.revokedAt && !archived.has(r.workspaceId))
            next.set(r.key, { workspaceId: r.workspaceId, kind: r.kind ?? 'server' });
        active = next;
        seen = rev;
      }
      markReady();
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, 'write_keys_reload_failed');
    }
    if (!stopped) timer = setTimeout(tick, opts.intervalMs ?? 500);
  };
  void tick();
  return {
    resolve: (key) => bootstrap.get(key) ?? active.get(key),
    ready,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
