// Tracking plans at the ingest edge: every workspace's plan compiled once per version and
// held in memory (reloaded when the definition store's revision moves, no Redis call per
// request), and what a plan does to one normalised event.
import type { DefinitionStore } from '../runtime/definitions.ts';
import { watchDefinitions } from '../runtime/definitions.ts';
import type { Logger } from '../runtime/log.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { type CompiledPlan, compilePlan, PLAN_HEADERS, type Violation } from '../schemas/tracking-plan.ts';

export interface PlanLookup {
  get(workspaceId: string): CompiledPlan | undefined;
}

/** What a plan made of an event: produce it (headers when it violated), or quarantine it. */
export interface PlanOutcome {
  quarantine: boolean;
  headers: Record<string, string>;
  /** Flag mode: takes the attached violations off the event again (it would be over the size limit). */
  detach?: () => void;
}

/**
 * Checks `e` against its workspace's plan. Conforming events (and workspaces without a plan)
 * get undefined and cost one Map lookup and the validators. A violating event carries
 * headers for the counts; in flag mode its violations are also set on `context.violations`
 * (before it is serialised); in quarantine mode it is to go to the quarantine topic.
 */
export function applyPlan(plans: PlanLookup | undefined, e: NormalizedEvent): PlanOutcome | undefined {
  const plan = plans?.get(e.workspaceId);
  if (!plan) return undefined;
  const violations = plan.check(e);
  if (!violations) return undefined;
  const headers = planHeaders(plan, violations);
  if (plan.mode !== 'flag') return { quarantine: plan.mode === 'quarantine', headers };
  const context = e.context;
  e.context = { ...context, violations };
  return {
    quarantine: false,
    headers,
    detach: () => {
      e.context = context;
    },
  };
}

export function planHeaders(plan: CompiledPlan, violations: Violation[]): Record<string, string> {
  return {
    [PLAN_HEADERS.violations]: JSON.stringify(violations),
    [PLAN_HEADERS.mode]: plan.mode,
    [PLAN_HEADERS.version]: String(plan.version),
  };
}

/**
 * Every workspace's compiled plan, kept current. A plan is compiled again only when its
 * version changed (the revision moves for any definition: a form edit recompiles nothing).
 * A plan that fails to compile (it was checked at save; a newer ajv could disagree) is
 * logged and left out rather than stopping the reload of the others.
 */
export function watchTrackingPlans(opts: { store: DefinitionStore; log: Logger; intervalMs: number }) {
  let byWorkspace = new Map<string, CompiledPlan>();
  const watch = watchDefinitions({
    store: opts.store,
    log: opts.log,
    intervalMs: opts.intervalMs,
    load: async () => {
      const next = new Map<string, CompiledPlan>();
      for (const p of await opts.store.list('trackingPlans')) {
        const had = byWorkspace.get(p.workspaceId);
        if (had && had.version === p.version) {
          next.set(p.workspaceId, had);
          continue;
        }
        try {
          next.set(p.workspaceId, compilePlan(p));
        } catch (err) {
          if (had) next.set(p.workspaceId, had); // the version before keeps applying
          opts.log.error(
            { workspaceId: p.workspaceId, version: p.version, err: (err as Error).message },
            'tracking_plan_compile_failed',
          );
        }
      }
      byWorkspace = next;
    },
  });
  return {
    get: (ws: string) => byWorkspace.get(ws),
    ready: watch.ready,
    refresh: () => watch.current(),
    stop: () => watch.stop(),
  };
}
