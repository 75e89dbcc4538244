// The Redis key layout, declared once. Every key of one workspace carries the hash tag
// `{workspaceId}`, so a Lua script touching identities, profiles and memberships of a
// workspace runs on one Redis Cluster slot. The keys that are not per workspace (below,
// globalKeys) all carry one other tag, `{~g}` (globalTag), so a script or transaction over
// two of them (the timer set and its lease, write keys and their revision) is on one slot
// too; an operation never mixes the two kinds in one script or transaction.

export interface WorkspaceKeys {
  /** Hash-tagged prefix of every key of this workspace; passed to Lua scripts as KEYS[1]. */
  tag: string;
  identity(kind: IdentityKind, value: string): string;
  profile(profileId: string): string;
  profileTraits(profileId: string): string;
  profileTraitTimes(profileId: string): string;
  profileIdentities(profileId: string): string;
  profileSegments(profileId: string): string;
  /** Set of the counted-condition ids the profile has event times for. */
  profileConditions(profileId: string): string;
  /** Sorted set of the times (ms) of the profile's events matching a counted condition (member = messageId). */
  profileConditionTimes(profileId: string, conditionId: string): string;
  /** Set of the account (group) ids the profile joined with group calls. */
  profileGroups(profileId: string): string;
  /** Hash of an account's traits (group calls), trait → JSON value. */
  accountTraits(groupId: string): string;
  /** Hash of workspace counters: `profiles` = live profiles (apply-event.lua, erase-profile.lua). */
  stats: string;
  /** Hash of one computed trait's buckets (see schemas/computed-trait.ts), by storage id. */
  profileAggregate(profileId: string, storageId: string): string;
  /** Set of the computed-trait storage ids the profile has. */
  profileAggregates(profileId: string): string;
  /** Hash counterId → decayed count of a lead-score event rule, `"<count> <asOf ms> <halfLife ms>"`. */
  profileScoreCounters(profileId: string): string;
  /**
   * Hash of the profile's push devices (profiles/apply-event.lua): device key (`i:<device id>`,
   * or `t:<token>` when the SDK sent no id) → `<last seen ms>|<type>|<token>`.
   */
  profileDevices(profileId: string): string;
  /** String: the profile a push device (device key, as above) belongs to now. */
  deviceOwner(deviceKey: string): string;
  /** String: the device key a push token belongs to now (a token is one device's at a time). */
  deviceToken(token: string): string;
  /** Set of the device keys one push send (by send key) has reached, kept between its attempts. */
  pushDone(sendKey: string): string;
  dedup(messageId: string): string;
  segmentMembers(segmentId: string): string;
  sendClaim(sendKey: string): string;
  /** Hash `${channel}:${purpose}` (purpose may be `*`) → `granted|revoked:<epoch ms>`. */
  consent(profileId: string): string;
  /** Set of suppressed addresses: `email:<lowercased>`, `phone:<digits>`, `profile:<id>`. */
  suppressions: string;
  /** Hash of the workspace's settings: `clientKeys` = restricted|trusted (apply-event.lua reads it). */
  settings: string;
  /** Sorted set of send keys counted against a cap → send time (ms); `channel` may be `all`. */
  capLog(profileId: string, channel: string): string;
  /** Hash campaignId → `${sendKey}|${ms}` of the campaign's last send to the profile (re-entry rules). */
  reentry(profileId: string): string;
  /** The same record as one string per campaign and profile, as written before it moved into the hash (read only). */
  legacyReentry(campaignId: string, profileId: string): string;
  /** Sorted set of erasure tombstones (schemas/erasure.ts: tombstoneMember) → erasure time (ms). */
  erased: string;
  /** Hash of one erasure job (query/erasure-job.ts). */
  erasure(jobId: string): string;
  /** Sorted set of the workspace's erasure job ids → creation time (ms). */
  erasures: string;
  /** Hash profile id → the erasure job erasing it (a repeated DELETE finds its job). */
  erasureByProfile: string;
  /** Hash of one export job (query/exports.ts): `job` JSON, `slices` JSON, `attempts`. */
  exportJob(jobId: string): string;
  /** Sorted set of the workspace's export job ids → creation time (ms). */
  exports: string;
  /** Sorted set: the snapshot of a segment's members an export pages through. */
  exportMembers(jobId: string): string;
  /** Hash `${segmentId}:entered|exited` → segment changes that matched no active campaign. */
  noCampaign: string;
  /** Hash: a campaign's send-rate reservations (`tat`, `iv`, `ver`, `gen`; activation/policy/contact-policy.lua). */
  sendRate(campaignId: string): string;
  /** Hash: a person's run through a journey (activation/journeys/run-state.lua). */
  journeyRun(journeyId: string, profileId: string): string;
  /** Hash: a journey's per-node counts (entered, now:<node>, passed:<node>, …). */
  journeyStats(journeyId: string): string;
}

/** `ext.<type>`: an external id type configured as identifying (CDP_IDENTITY_EXTERNAL_ID_TYPES). */
export type IdentityKind = 'user' | 'anon' | 'email' | `ext.${string}`;

/**
 * The key builders of a workspace. Hot paths (a send asks twice) get the same object back
 * instead of 17 new closures each time; the memo is bounded, since workspace ids come
 * from data.
 */
export function workspaceKeys(prefix: string, workspaceId: string): WorkspaceKeys {
  const memoKey = `${prefix}\u0000${workspaceId}`;
  let keys = memo.get(memoKey);
  if (!keys) {
    if (memo.size >= MEMO_MAX) memo.clear();
    keys = Object.freeze(buildWorkspaceKeys(prefix, workspaceId));
    memo.set(memoKey, keys);
  }
  return keys;
}
const memo = new Map<string, WorkspaceKeys>();
const MEMO_MAX = 10_000;

function buildWorkspaceKeys(prefix: string, workspaceId: string): WorkspaceKeys {
  const tag = `${prefix}:{${workspaceId}}`;
  return {
    tag,
    identity: (kind, value) => `${tag}:id:${kind}:${value}`,
    profile: (pid) => `${tag}:p:${pid}`,
    profileTraits: (pid) => `${tag}:p:${pid}:t`,
    profileTraitTimes: (pid) => `${tag}:p:${pid}:tt`,
    profileIdentities: (pid) => `${tag}:p:${pid}:ids`,
    profileSegments: (pid) => `${tag}:p:${pid}:seg`,
    profileConditions: (pid) => `${tag}:p:${pid}:cs`,
    profileConditionTimes: (pid, cid) => `${tag}:p:${pid}:c:${cid}`,
    profileGroups: (pid) => `${tag}:p:${pid}:groups`,
    accountTraits: (gid) => `${tag}:acct:${gid}:t`,
    stats: `${tag}:stats`,
    profileAggregate: (pid, sid) => `${tag}:p:${pid}:ag:${sid}`,
    profileAggregates: (pid) => `${tag}:p:${pid}:ags`,
    profileScoreCounters: (pid) => `${tag}:p:${pid}:sc`,
    profileDevices: (pid) => `${tag}:p:${pid}:dev`,
    deviceOwner: (key) => `${tag}:dev:${key}`,
    deviceToken: (token) => `${tag}:devtok:${token}`,
    pushDone: (key) => `${tag}:pushdone:${key}`,
    dedup: (mid) => `${tag}:dedup:${mid}`,
    segmentMembers: (sid) => `${tag}:s:${sid}:m`,
    sendClaim: (key) => `${tag}:send:${key}`,
    consent: (pid) => `${tag}:p:${pid}:consent`,
    suppressions: `${tag}:suppress`,
    settings: `${tag}:settings`,
    capLog: (pid, channel) => `${tag}:p:${pid}:cap:${channel}`,
    reentry: (pid) => `${tag}:p:${pid}:re`,
    legacyReentry: (cid, pid) => `${tag}:re:${cid}:${pid}`,
    erased: `${tag}:erased`,
    erasure: (jobId) => `${tag}:erasure:${jobId}`,
    erasures: `${tag}:erasures`,
    erasureByProfile: `${tag}:erasure:byprofile`,
    exportJob: (jobId) => `${tag}:export:${jobId}`,
    exports: `${tag}:exports`,
    exportMembers: (jobId) => `${tag}:export:${jobId}:members`,
    noCampaign: `${tag}:act:nocampaign`,
    sendRate: (cid) => `${tag}:rate:${cid}`,
    journeyRun: (jid, pid) => `${tag}:jr:${jid}:${pid}`,
    journeyStats: (jid) => `${tag}:js:${jid}`,
  };
}

/**
 * The hash-tagged prefix of every key that is not per workspace. A workspace id is `ws_…`
 * or CDP_DEFAULT_WORKSPACE ([A-Za-z0-9_-]), never `~g`, so no workspace key shares it. Before the tag, these keys were named
 * `${prefix}:<name>`; runtime/redis-migrate.ts renames such keys of a single-node
 * deployment.
 */
export const globalTag = (prefix: string) => `${prefix}:{~g}`;

/** Keys that are not per workspace: definitions every processor loads. */
export function globalKeys(prefix: string) {
  return globalKeysUnder(globalTag(prefix));
}

/** The global key names as they were before the hash tag (read by the key migration only). */
export const legacyGlobalKeys = (prefix: string) => globalKeysUnder(prefix);

function globalKeysUnder(prefix: string) {
  return {
    /** Hash `${workspaceId}/${segmentId}` → SegmentDefinition JSON. */
    segments: `${prefix}:defs:segments`,
    /** Hash `${workspaceId}/${campaignId}` → CampaignDefinition JSON. */
    campaigns: `${prefix}:defs:campaigns`,
    /** Hash `${workspaceId}/${id}` → ComputedTraitDefinition JSON. */
    computedTraits: `${prefix}:defs:computed-traits`,
    /** Hash `${workspaceId}/${id}` → LeadScoreDefinition JSON. */
    scores: `${prefix}:defs:scores`,
    /** Hash `${workspaceId}/${journeyId}` → JourneyDefinition JSON (the latest version). */
    journeys: `${prefix}:defs:journeys`,
    /** Hash `${workspaceId}/${journeyId}@${version}` → JourneyDefinition JSON of that version. */
    journeyVersions: `${prefix}:defs:journey-versions`,
    /** Hash `${workspaceId}/${formId}` → FormDefinition JSON (the latest version). */
    forms: `${prefix}:defs:forms`,
    /** Hash `${workspaceId}/${formId}@${version}` → FormDefinition JSON of that version. */
    formVersions: `${prefix}:defs:form-versions`,
    /** Sorted set of PendingFormConsent JSON (schemas/form.ts) → epoch ms when it is tried (again). */
    formConsentDue: `${prefix}:forms:consent-due`,
    /** Hash `${workspaceId}/tracking-plan` → TrackingPlan JSON (the latest version). */
    trackingPlans: `${prefix}:defs:tracking-plans`,
    /** Hash `${workspaceId}/tracking-plan@${version}` → TrackingPlan JSON of that version. */
    trackingPlanVersions: `${prefix}:defs:tracking-plan-versions`,
    /** String: the token of the replay of quarantined events running in a workspace (a lock). */
    trackingPlanReplay: (workspaceId: string) => `${prefix}:tracking-plan:replay:${workspaceId}`,
    /** Hash `${workspaceId}/${pageId}` → PageDefinition JSON (the latest version). */
    pages: `${prefix}:defs:pages`,
    /** Hash `${workspaceId}/${pageId}@${version}` → PageDefinition JSON of that version. */
    pageVersions: `${prefix}:defs:page-versions`,
    /** Hash `${workspaceId}/${slug}` → the id of the page that holds the slug. */
    pageSlugs: `${prefix}:pages:slugs`,
    /** Hash `${workspaceId}/${destinationId}` → DestinationDefinition JSON (schemas/destination.ts). */
    destinations: `${prefix}:defs:destinations`,
    /**
     * Sorted set of one destination's deliveries waiting for another attempt (destinations/retry-set.ts)
     * → epoch ms when due (or when a claimer's lease ends; behind an open circuit, a priority).
     */
    destinationRetries: (destinationId: string) => `${prefix}:dest:retry:${destinationId}`,
    /** Counter bumped on every definition change; processors reload when it moves. */
    revision: `${prefix}:defs:rev`,
    /** Sorted set `${workspaceId}/${profileId}` → epoch ms when a windowed rule must be re-evaluated. */
    timers: `${prefix}:timers`,
    /** Sorted set of claimed timers → lease expiry; a dead claimer's timers go back after it. */
    timerLeases: `${prefix}:timers:lease`,
    /** Hash `${workspaceId}/${segmentId}` → BackfillStatus JSON. */
    backfills: `${prefix}:backfill`,
    /** Lock of one backfill run: `${prefix}:backfill-lock:${workspaceId}/${segmentId}/${version}`. */
    backfillLock: (workspaceId: string, segmentId: string, version: number) =>
      `${prefix}:backfill-lock:${workspaceId}/${segmentId}/${version}`,
    /** Hash write key → WriteKeyRecord JSON (revoked keys stay, marked). */
    writeKeys: `${prefix}:keys:write`,
    /** Counter bumped on every write-key change; ingest reloads its cache when it moves. */
    writeKeysRevision: `${prefix}:keys:rev`,
    /** Sorted set of delayed activation jobs (JSON) → epoch ms when they may be sent. */
    activationDelayed: `${prefix}:act:delayed`,
    /** Sorted set of journey runs waiting for a time (activation/journeys/journey-timers.ts) → due ms. */
    journeysDue: `${prefix}:journeys:due`,
    /** Sorted set of claimed journey timers → lease expiry. */
    journeysLease: `${prefix}:journeys:lease`,
    /** Sorted set of the timers of a paused journey, put back when it resumes → due ms. */
    journeysParked: (workspaceId: string, journeyId: string) =>
      `${prefix}:journeys:parked:${workspaceId}/${journeyId}`,
    /**
     * Hash `${workspaceId}/${journeyId}` → JSON of its broadcast or schedule entry's current
     * occurrence {occ, cursor, done} (activation/journeys/time-entries.ts).
     */
    journeysEntries: `${prefix}:journeys:entries`,
    /**
     * Hash `${workspaceId}/${journeyId}` → JSON of the journey's latest migration of people
     * in flight to its current version (activation/journeys/migrations.ts).
     */
    journeysMigrations: `${prefix}:journeys:migrations`,
    /** String: the lease of the runner moving a journey's people to a new version. */
    journeysMigrationLease: (workspaceId: string, journeyId: string) =>
      `${prefix}:journeys:migration-lease:${workspaceId}/${journeyId}`,
    /** String: the lease of the runner entering a journey's occurrence (SET NX PX). */
    journeysEntryLease: (workspaceId: string, journeyId: string) =>
      `${prefix}:journeys:entry-lease:${workspaceId}/${journeyId}`,
    /** Short lock so one worker at a time moves due delayed jobs to the retry topic. */
    activationDelayedLock: `${prefix}:act:delayed:lock`,
    /** Sorted set `${workspaceId}/${jobId}` → when an unfinished erasure job is tried (again). */
    erasuresDue: `${prefix}:erasures:due`,
    /** Sorted set `${workspaceId}/${jobId}` → when an export job runs (or its runner's lease ends). */
    exportsDue: `${prefix}:exports:due`,
    /** Sorted set `${workspaceId}/${jobId}` → when a finished export's file is deleted. */
    exportsExpire: `${prefix}:exports:expire`,
    /** Sorted set workspace id → time (ms) of its latest erasure, for readers of the tombstones. */
    erasedWorkspaces: `${prefix}:erased:ws`,
  };
}
