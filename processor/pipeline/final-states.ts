// Step 3: the final state of each profile this batch touched, what its events changed, and
// the identity changes to publish (cdp.identity) with the profile's final identifiers.

import { type ProfileState, traitOpNames, traitsOf } from '../../profiles/apply-event.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import type { IdentityChange } from '../../schemas/identity-change.ts';
import type { ProcessorDeps } from '../pipeline.ts';
import type { Applied } from './apply-events.ts';
import { readStates } from './read-states.ts';
import { hasSegments, isWide, type SettleItem } from './shared.ts';

export interface LatestState {
  ws: string;
  state: ProfileState;
  event: NormalizedEvent;
  /** What this profile's events changed in this batch, for choosing the segments to evaluate. */
  touched: { traits: Set<string>; conditions: Set<string>; computed: Set<string>; scores: Set<string> };
  wide: boolean;
}

export interface BatchProfiles {
  /** `${workspaceId}/${profileId}` → the profile's latest state in this batch (maybe incomplete). */
  latest: Map<string, LatestState>;
  /** `${workspaceId}/${profileId}` → the profile's identity change; identifiers still to fill. */
  identity: Map<string, IdentityChange>;
}

export interface FinalStates {
  /** Each touched profile's complete final state, to evaluate. */
  items: SettleItem[];
  /** The identity changes, with each profile's final identifiers. */
  identity: IdentityChange[];
}

/** Folds the events' results into each profile's latest state (profiles merged away left out). */
export function latestStates(
  deps: Pick<ProcessorDeps, 'computed' | 'log'>,
  events: NormalizedEvent[],
  { plans, results }: Applied,
  at: Date,
): BatchProfiles {
  const latest = new Map<string, LatestState>();
  const mergedAway = new Set<string>();
  const identity = new Map<string, IdentityChange>();
  results.forEach(([err, state], i) => {
    if (err) throw err;
    const event = events[i]!;
    if (!state) return;
    if (state.identityVersion > 0) {
      const key = `${event.workspaceId}/${state.profileId}`;
      // the latest state of a profile in this batch carries the highest version; its
      // identifiers are read from the profile's final state (finalStates)
      identity.set(key, {
        workspaceId: event.workspaceId,
        profileId: state.profileId,
        identifiers: [],
        mergedProfileIds: state.merged,
        version: state.identityVersion,
        messageId: event.messageId,
        occurredAt: at.toISOString(),
      });
    }
    for (const m of state.merged) mergedAway.add(`${event.workspaceId}/${m}`);
    for (const c of state.conflicts)
      deps.log.info(
        { workspaceId: event.workspaceId, profileId: state.profileId, identity: c },
        'identity_link_refused',
      );
    // a client key's attempt on a known person, and what the per-profile bounds kept out
    if (state.refused.length > 0)
      deps.log.info(
        {
          workspaceId: event.workspaceId,
          profileId: state.profileId,
          messageId: event.messageId,
          refused: state.refused,
        },
        'client_key_change_refused',
      );
    if (state.limited.length > 0)
      deps.log.info(
        {
          workspaceId: event.workspaceId,
          profileId: state.profileId,
          messageId: event.messageId,
          limited: state.limited,
        },
        'profile_limit_reached',
      );
    // what this profile's events changed in this batch, for choosing the segments to evaluate
    const key = `${event.workspaceId}/${state.profileId}`;
    const touched = latest.get(key)?.touched ?? {
      traits: new Set<string>(),
      conditions: new Set<string>(),
      computed: new Set<string>(),
      scores: new Set<string>(),
    };
    const traitKeys = Object.keys(traitsOf(event));
    for (const t of traitOpNames(event)) traitKeys.push(t);
    for (const t of traitKeys) touched.traits.add(t);
    for (const [c] of plans[i]!.add) touched.conditions.add(c);
    deps.computed?.touchedNames(event.workspaceId, plans[i]!, traitKeys, touched);
    // a creation, merge or replay earlier in the batch widens the evaluation of the
    // profile's final state, even when its last event was an ordinary one
    const wide = (latest.get(key)?.wide ?? false) || isWide(state);
    latest.set(key, { ws: event.workspaceId, state, event, touched, wide });
  });
  for (const k of mergedAway) {
    latest.delete(k);
    identity.delete(k);
  }
  return { latest, identity };
}

/**
 * Completes the latest states: a workspace without segments gets back only the state of
 * profiles whose identity a call changed. A profile whose state is needed all the same is
 * read now: its identity changed in an earlier call of this batch, or its workspace has had
 * a segment since.
 */
export async function finalStates(
  deps: Pick<ProcessorDeps, 'redis' | 'redisPrefix' | 'registry'>,
  { latest, identity }: BatchProfiles,
): Promise<FinalStates> {
  const unread = [...latest].filter(
    ([k, { ws, state }]) => !state.complete && (identity.has(k) || hasSegments(deps.registry, ws)),
  );
  if (unread.length > 0) {
    const fresh = await readStates(
      deps,
      unread.map(([, { ws, state }]) => ({ ws, profileId: state.profileId })),
    );
    unread.forEach(([k, entry], i) => {
      const state = fresh[i];
      // erased or merged away meanwhile: nothing of it left to evaluate or publish
      if (!state) {
        latest.delete(k);
        identity.delete(k);
      } else entry.state = { ...state, created: entry.state.created, duplicate: entry.state.duplicate };
    });
  }
  for (const [k, change] of identity) {
    const final = latest.get(k)?.state;
    if (!final?.complete) throw new Error(`no final state for profile ${k} in this batch`);
    change.identifiers = final.identities;
  }
  for (const [k, { state }] of latest) if (!state.complete) latest.delete(k);
  return { items: [...latest.values()], identity: [...identity.values()] };
}
