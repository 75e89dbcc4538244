// Write keys: created and revoked through the query API, stored in Redis, and resolved by
// ingest from an in-memory copy refreshed when the key revision moves (so a revoked key
// stops working within the refresh interval, and ingest keeps its last copy if Redis is
// briefly unreachable). The key in the configuration (CDP_WRITE_KEY) is the bootstrap key
// of the default workspace and always valid.
import { randomBytes } from 'node:crypto';
import { globalKeys } from '../schemas/redis-keys.ts';
import type { Logger } from './log.ts';
import type { Redis } from './redis.ts';

export interface WriteKeyRecord {
  id: string;
  key: string;
  workspaceId: string;
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

export class WriteKeyStore {
  private readonly keys: ReturnType<typeof globalKeys>;
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = globalKeys(prefix);
  }

  async create(workspaceId: string, name: string, now: Date): Promise<WriteKeyRecord> {
    const rec: WriteKeyRecord = {
      id: `wk_${randomBytes(6).toString('hex')}`,
      key: `wk_live_${randomBytes(18).toString('base64url')}`,
      workspaceId,
      name,
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
    const all = Object.values(await this.redis.hgetall(this.keys.writeKeys)).map(
      (v) => JSON.parse(v) as WriteKeyRecord,
    );
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

/** A synchronous key → workspace lookup for the hot path, refreshed in the background. */
export function watchWriteKeys(opts: {
  store: WriteKeyStore;
  bootstrap: Map<string, string>;
  log: Logger;
  intervalMs?: number;
}): { resolve(key: string): string | undefined; ready: Promise<void>; stop(): void } {
  let active = new Map<string, string>();
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
        const next = new Map<string, string>();
        for (const r of await opts.store.list()) if (!r.revokedAt) next.set(r.key, r.workspaceId);
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
    resolve: (key) => opts.bootstrap.get(key) ?? active.get(key),
    ready,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
