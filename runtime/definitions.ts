// Segment, campaign, computed-trait and lead-score definitions live in Redis (AOF on), written by the query service
// and loaded by every processor and activation worker. A revision counter moves on each
// change; workers poll it (one GET) and reload when it moved, so an edit reaches every
// worker within the poll interval without restarts.

import type { CampaignDefinition } from '../schemas/campaign.ts';
import type { ComputedTraitDefinition } from '../schemas/computed-trait.ts';
import type { LeadScoreDefinition } from '../schemas/lead-score.ts';
import { globalKeys } from '../schemas/redis-keys.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import type { Logger } from './log.ts';
import type { Redis } from './redis.ts';

interface Defs {
  segments: SegmentDefinition;
  campaigns: CampaignDefinition;
  computedTraits: ComputedTraitDefinition;
  scores: LeadScoreDefinition;
}
export type DefinitionKind = keyof Defs;
type Kind = DefinitionKind;
export type DefOf<K extends Kind> = Defs[K];

export class DefinitionStore {
  private readonly keys: ReturnType<typeof globalKeys>;
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = globalKeys(prefix);
  }

  async get<K extends Kind>(kind: K, workspaceId: string, id: string): Promise<DefOf<K> | undefined> {
    const raw = await this.redis.hget(this.keys[kind], `${workspaceId}/${id}`);
    return raw ? (JSON.parse(raw) as DefOf<K>) : undefined;
  }

  async list<K extends Kind>(kind: K, workspaceId?: string): Promise<DefOf<K>[]> {
    const all = await this.redis.hgetall(this.keys[kind]);
    const out: DefOf<K>[] = [];
    for (const [field, raw] of Object.entries(all)) {
      if (workspaceId && !field.startsWith(`${workspaceId}/`)) continue;
      out.push(JSON.parse(raw) as DefOf<K>);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async put<K extends Kind>(kind: K, def: DefOf<K>): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys[kind], `${def.workspaceId}/${def.id}`, JSON.stringify(def))
      .incr(this.keys.revision)
      .exec();
  }

  async remove(kind: Kind, workspaceId: string, id: string): Promise<boolean> {
    const res = await this.redis
      .multi()
      .hdel(this.keys[kind], `${workspaceId}/${id}`)
      .incr(this.keys.revision)
      .exec();
    return Number(res?.[0]?.[1] ?? 0) > 0;
  }

  async revision(): Promise<string> {
    return (await this.redis.get(this.keys.revision)) ?? '0';
  }
}

/**
 * Keeps a derived view of the definitions current: calls `load` at start and whenever
 * the revision moves. `ready` resolves after the first successful load.
 */
export function watchDefinitions(opts: {
  store: DefinitionStore;
  load: () => Promise<void>;
  log: Logger;
  intervalMs?: number;
}): { ready: Promise<void>; refresh(): Promise<void>; stop(): void } {
  let seen: string | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let markReady: () => void;
  const ready = new Promise<void>((r) => {
    markReady = r;
  });
  const refresh = async () => {
    const rev = await opts.store.revision();
    if (rev === seen) return;
    await opts.load();
    seen = rev;
    markReady();
  };
  const tick = async () => {
    try {
      await refresh();
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, 'definitions_reload_failed');
    }
    if (!stopped) timer = setTimeout(tick, opts.intervalMs ?? 250);
  };
  void tick();
  return {
    ready,
    refresh,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
