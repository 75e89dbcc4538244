// Segment, campaign, computed-trait and lead-score definitions live in Redis (AOF on), written by the query service
// and loaded by every processor and activation worker. A revision counter moves on each
// change; workers poll it (one GET) and reload when it moved, so an edit reaches every
// worker within the poll interval without restarts.

import type { CampaignDefinition } from '../schemas/campaign.ts';
import type { ComputedTraitDefinition } from '../schemas/computed-trait.ts';
import type { DestinationDefinition } from '../schemas/destination.ts';
import type { FormDefinition } from '../schemas/form.ts';
import type { JourneyDefinition } from '../schemas/journey.ts';
import type { LeadScoreDefinition } from '../schemas/lead-score.ts';
import type { PageDefinition } from '../schemas/page.ts';
import { globalKeys } from '../schemas/redis-keys.ts';
import type { SegmentDefinition } from '../schemas/segment.ts';
import type { TrackingPlan } from '../schemas/tracking-plan.ts';
import type { Logger } from './log.ts';
import type { Redis } from './redis.ts';

interface Defs {
  segments: SegmentDefinition;
  campaigns: CampaignDefinition;
  computedTraits: ComputedTraitDefinition;
  scores: LeadScoreDefinition;
  journeys: JourneyDefinition;
  /** Every saved version of every journey, id `${journeyId}@${version}` (people in flight stay on theirs). */
  journeyVersions: JourneyDefinition;
  forms: FormDefinition;
  /** Every saved version of every form, id `${formId}@${version}` (consent records name theirs). */
  formVersions: FormDefinition;
  /** One tracking plan per workspace (id `tracking-plan`). */
  trackingPlans: TrackingPlan;
  /** Every saved version of it, id `tracking-plan@${version}`. */
  trackingPlanVersions: TrackingPlan;
  pages: PageDefinition;
  /** Every saved version of every landing page, id `${pageId}@${version}`. */
  pageVersions: PageDefinition;
  /** Outgoing destinations (destinations/): each runs its own consumer group. */
  destinations: DestinationDefinition;
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

  /** Several definitions in one step (one revision): e.g. a journey and its new version. */
  async putMany(entries: Array<{ kind: Kind; def: DefOf<Kind>; field?: string }>): Promise<void> {
    const m = this.redis.multi();
    for (const e of entries)
      m.hset(this.keys[e.kind], `${e.def.workspaceId}/${e.field ?? e.def.id}`, JSON.stringify(e.def));
    const res = await m.incr(this.keys.revision).exec();
    for (const [err] of res ?? []) if (err) throw err;
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
 *
 * The background poll alone leaves a window (up to `intervalMs`) in which a worker acts on
 * definitions older than the data it handles: a campaign created just before an event
 * would miss that event's segment entry. So a consumer calls `current()` before each batch:
 * it resolves once the loaded definitions are at least as new as the revision read after
 * the call began (one GET when nothing moved). Anything saved before a message was
 * produced is then seen when that message is handled.
 */
export function watchDefinitions(opts: {
  store: DefinitionStore;
  load: () => Promise<void>;
  log: Logger;
  intervalMs?: number;
}): { ready: Promise<void>; current(): Promise<void>; stop(): void } {
  let seen: string | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let markReady: () => void;
  const ready = new Promise<void>((r) => {
    markReady = r;
  });
  // one check at a time, so loads never overlap or land out of order
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const check = async () => {
    const rev = await opts.store.revision();
    if (rev === seen) return;
    await opts.load();
    seen = rev;
    markReady();
  };
  /** A check that starts after this call: joins the queued one, else queues behind the running one. */
  const current = (): Promise<void> => {
    if (queued) return queued;
    if (!running) {
      running = check().finally(() => {
        running = undefined;
      });
      return running;
    }
    // the running check may have read the revision before our caller's data was written
    queued = running
      .catch(() => {})
      .then(() => {
        queued = undefined;
        return current();
      });
    return queued;
  };
  const tick = async () => {
    try {
      await current();
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, 'definitions_reload_failed');
    }
    if (!stopped) timer = setTimeout(tick, opts.intervalMs ?? 250);
  };
  void tick();
  return {
    ready,
    current,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
