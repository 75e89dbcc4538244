// Journeys: a graph of steps a person walks through after an entry trigger (a segment entry
// or exit, an event, a date trait, a broadcast to a segment or a recurring schedule): waits
// (a duration, until a local time of day, or until an event or a segment entry, with a
// timeout), branches on a rule over the profile, weighted random splits with a holdout,
// sends on any channel (as campaigns do, contact policy included), trait updates, scores,
// static lists, exits.
// Definitions are versioned data: the query service validates and stores them
// (query/routes/journeys.ts), the journey runner (activation/journeys/) walks people
// through them; a person in flight stays on the version they entered.
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';
import {
  CampaignPolicy,
  ChannelName,
  EmailSettings,
  PushSettings,
  SmsSettings,
  WebhookSettings,
} from './campaign.ts';
import { checkShape, DefinitionInputError } from './definition-input.ts';
import {
  isTimezone,
  localDateTime,
  parseCron,
  parseDayOffset,
  parseTimeOfDay,
  WEEKDAYS,
} from './journey-time.ts';
import { compileCondition, compileRule, RuleError } from './rules.ts';

const NodeId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
/** ISO 8601 duration: `PT2S`, `P2D`, `P1W`, `P1DT12H` (no months or years: their length varies). */
const Duration = Type.String({ maxLength: 40 });
const EventName = Type.String({ minLength: 1, maxLength: 512 });
const Filter = Type.Unknown();

const EventTrigger = Type.Object(
  { event: EventName, where: Type.Optional(Filter) },
  { additionalProperties: false },
);
const SegmentTrigger = Type.Object(
  { segment: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);

/**
 * The goal: reaching it ends a run as a conversion. `within` (default 30 days): the window
 * after entering in which a conversion counts for the branches a run took (conversion by
 * branch and a holdout's lift), also when the run had already ended (completed, exited,
 * held out), so a control group is measured as the people who got the messages are.
 */
const GoalEvent = Type.Object(
  { event: EventName, where: Type.Optional(Filter), within: Type.Optional(Duration) },
  { additionalProperties: false },
);
const GoalSegment = Type.Object(
  { segment: Type.String({ minLength: 1, maxLength: 64 }), within: Type.Optional(Duration) },
  { additionalProperties: false },
);
export const DEFAULT_CONVERSION_WINDOW = 'P30D';

const SegmentEntry = Type.Object(
  {
    segment: Type.String({ minLength: 1, maxLength: 64 }),
    on: Type.Union([Type.Literal('enter'), Type.Literal('exit')]),
  },
  { additionalProperties: false },
);
/** A date trait (e.g. `renewal_date`) plus an offset in days (`-P14D`), at a local time of that day. */
const DateTraitEntry = Type.Object(
  {
    dateTrait: Type.String({ minLength: 1, maxLength: 256 }),
    offset: Type.Optional(Type.String({ maxLength: 20 })),
    at: Type.String({ maxLength: 8 }),
  },
  { additionalProperties: false },
);
/**
 * Every member of a segment, once, at a time (ISO 8601 with a zone: `2026-12-24T09:00:00Z`),
 * or with `localTime`, at that wall-clock time in each member's own zone (`at` without a
 * zone: `2026-12-24T09:00`).
 */
const BroadcastEntry = Type.Object(
  {
    broadcast: Type.Object(
      {
        segment: Type.String({ minLength: 1, maxLength: 64 }),
        at: Type.String({ maxLength: 40 }),
        localTime: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
/** Every member of a segment at each tick of a cron expression, in `tz` (else the deployment's zone). */
const ScheduleEntry = Type.Object(
  {
    schedule: Type.Object(
      {
        cron: Type.String({ minLength: 1, maxLength: 200 }),
        tz: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
        segment: Type.String({ minLength: 1, maxLength: 64 }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export const JourneyEntry = Type.Union([
  SegmentEntry,
  EventTrigger,
  DateTraitEntry,
  BroadcastEntry,
  ScheduleEntry,
]);
export type JourneyEntry = Static<typeof JourneyEntry>;

/** Until the next local time of day (on one of `weekdays`), in the profile's zone. */
const UntilLocal = Type.Object(
  {
    untilLocal: Type.Object(
      {
        time: Type.String({ maxLength: 8 }),
        weekdays: Type.Optional(
          Type.Array(Type.Union(WEEKDAYS.map((d) => Type.Literal(d))), {
            minItems: 1,
            maxItems: 7,
            uniqueItems: true,
          }),
        ),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

const WaitNode = Type.Object(
  {
    id: NodeId,
    type: Type.Literal('wait'),
    for: Type.Union([
      Duration,
      Type.Object(
        { until: Type.Union([EventTrigger, SegmentTrigger]), timeout: Duration },
        { additionalProperties: false },
      ),
      UntilLocal,
    ]),
    /** After a duration wait or a wait until a local time. */
    next: Type.Optional(NodeId),
    /** After a wait until something: `met` when it happened in time, `timeout` otherwise. */
    branches: Type.Optional(
      Type.Object(
        { met: Type.Optional(NodeId), timeout: Type.Optional(NodeId) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
const BranchNode = Type.Object(
  {
    id: NodeId,
    type: Type.Literal('branch'),
    rule: Type.Unknown(),
    yes: Type.Optional(NodeId),
    no: Type.Optional(NodeId),
  },
  { additionalProperties: false },
);
const SplitNode = Type.Object(
  {
    id: NodeId,
    type: Type.Literal('split'),
    variants: Type.Array(
      Type.Object(
        { weight: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000 }), next: Type.Optional(NodeId) },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 20 },
    ),
    /**
     * Percent of entrants held out as a control group: they leave the journey here, recorded
     * as holdout, and their conversions are counted as the other arms' are (the lift).
     */
    holdout: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  },
  { additionalProperties: false },
);
const SendNode = Type.Object(
  {
    id: NodeId,
    type: Type.Literal('send'),
    channel: ChannelName,
    webhook: Type.Optional(WebhookSettings),
    email: Type.Optional(EmailSettings),
    sms: Type.Optional(SmsSettings),
    push: Type.Optional(PushSettings),
    purpose: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,40}$' })),
    policy: Type.Optional(CampaignPolicy),
    next: Type.Optional(NodeId),
  },
  { additionalProperties: false },
);
const UpdateNode = Type.Object(
  {
    id: NodeId,
    type: Type.Literal('update'),
    /** Traits set on the profile, through the normal pipeline (an identify event). */
    traits: Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.Unknown(), { maxProperties: 50 }),
    next: Type.Optional(NodeId),
  },
  { additionalProperties: false },
);
/**
 * Calls a webhook (a CRM, a ticketing tool, your own service): a Standard Webhooks-signed
 * POST of `{type: "journey.webhook", journeyId, version, nodeId, run, profileId, userId,
 * traits, data, occurredAt}`, retried as sends are. Not a message to the person: quiet
 * hours and frequency caps do not apply (consent revoked for everything still does).
 */
const WebhookNode = Type.Object(
  {
    id: NodeId,
    type: Type.Literal('webhook'),
    webhook: WebhookSettings,
    /** Fixed JSON sent as `data` (at most 16 KB). */
    data: Type.Optional(Type.Record(Type.String({ maxLength: 256 }), Type.Unknown(), { maxProperties: 100 })),
    next: Type.Optional(NodeId),
  },
  { additionalProperties: false },
);
export type WebhookNode = Static<typeof WebhookNode>;
export const MAX_WEBHOOK_DATA_BYTES = 16_384;

/** Adds points to a numeric trait (a score; absent counts as 0), atomically in the pipeline. */
const ScoreNode = Type.Object(
  {
    id: NodeId,
    type: Type.Literal('score'),
    trait: Type.String({ minLength: 1, maxLength: 256 }),
    /** Points to add (negative to remove). */
    add: Type.Number({ minimum: -1_000_000, maximum: 1_000_000 }),
    next: Type.Optional(NodeId),
  },
  { additionalProperties: false },
);
/** The trait holding the ids of the static lists a person is on (a JSON array of strings). */
export const LISTS_TRAIT = 'lists';
/**
 * Puts the person on a static list, or takes them off: the list's id in their `lists`
 * trait, so segments can select a list's members (`{"in": ["vip", {"var": "traits.lists"}]}`)
 * and campaigns and journeys can react to it.
 */
const ListNode = Type.Object(
  {
    id: NodeId,
    type: Type.Literal('list'),
    list: Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' }),
    action: Type.Union([Type.Literal('add'), Type.Literal('remove')]),
    next: Type.Optional(NodeId),
  },
  { additionalProperties: false },
);
const ExitNode = Type.Object({ id: NodeId, type: Type.Literal('exit') }, { additionalProperties: false });

export const JourneyNode = Type.Union([
  WaitNode,
  BranchNode,
  SplitNode,
  SendNode,
  WebhookNode,
  UpdateNode,
  ScoreNode,
  ListNode,
  ExitNode,
]);
export type JourneyNode = Static<typeof JourneyNode>;
export type SendNode = Static<typeof SendNode>;

export const ReEntry = Type.Union([
  /** Once per person, ever (default). */
  Type.Literal('never'),
  /** Again once their previous run has ended. */
  Type.Literal('after_exit'),
  /** Again once their previous run has ended and N days have passed since they entered it. */
  Type.Object({ everyDays: Type.Integer({ minimum: 1, maximum: 3650 }) }, { additionalProperties: false }),
]);
export type ReEntry = Static<typeof ReEntry>;

export const JourneyInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    entry: JourneyEntry,
    /** The graph; the first node is where people start. */
    nodes: Type.Array(JourneyNode, { minItems: 1, maxItems: 100 }),
    /** Reaching it ends the run as a conversion, wherever the person is. */
    goal: Type.Optional(Type.Union([GoalEvent, GoalSegment])),
    reEntry: Type.Optional(ReEntry),
    /** Leave the journey when leaving this segment (e.g. the entry segment). */
    exitOnSegmentExit: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type JourneyInput = Static<typeof JourneyInput>;
const journeyInputCheck = TypeCompiler.Compile(JourneyInput);
const NODE_CHECKS = {
  wait: TypeCompiler.Compile(WaitNode),
  branch: TypeCompiler.Compile(BranchNode),
  split: TypeCompiler.Compile(SplitNode),
  send: TypeCompiler.Compile(SendNode),
  webhook: TypeCompiler.Compile(WebhookNode),
  update: TypeCompiler.Compile(UpdateNode),
  score: TypeCompiler.Compile(ScoreNode),
  list: TypeCompiler.Compile(ListNode),
  exit: TypeCompiler.Compile(ExitNode),
};
const segmentEntryCheck = TypeCompiler.Compile(SegmentEntry);
const eventTriggerCheck = TypeCompiler.Compile(EventTrigger);
const segmentTriggerCheck = TypeCompiler.Compile(SegmentTrigger);
const goalEventCheck = TypeCompiler.Compile(GoalEvent);
const goalSegmentCheck = TypeCompiler.Compile(GoalSegment);
const untilLocalCheck = TypeCompiler.Compile(UntilLocal);
const TIME_ENTRY_CHECKS = {
  dateTrait: TypeCompiler.Compile(DateTraitEntry),
  broadcast: TypeCompiler.Compile(BroadcastEntry),
  schedule: TypeCompiler.Compile(ScheduleEntry),
};

/** The parts of a union (entry, goal, a node) checked one by one, so an error names the field. */
function checkParts(body: unknown): void {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return;
  const b = body as Record<string, unknown>;
  const trigger = (v: unknown, at: string, entry: boolean, goal = false) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return;
    if ('segment' in v) {
      if (entry) checkShape(segmentEntryCheck, v, {}, `${at}.`);
      else checkShape(goal ? goalSegmentCheck : segmentTriggerCheck, v, {}, `${at}.`);
    } else if ('event' in v) checkShape(goal ? goalEventCheck : eventTriggerCheck, v, {}, `${at}.`);
    else {
      const kind = entry ? Object.keys(TIME_ENTRY_CHECKS).find((k) => k in v) : undefined;
      if (kind)
        checkShape(
          TIME_ENTRY_CHECKS[kind as keyof typeof TIME_ENTRY_CHECKS] as TypeCheck<TSchema>,
          v,
          {},
          `${at}.`,
        );
      else
        throw bad(
          `${at}: ${entry ? '{segment, on}, {event, where?}, {dateTrait, offset?, at}, {broadcast: {segment, at}} or {schedule: {cron, tz?, segment}}' : '{event, where?} or {segment}'}`,
        );
    }
  };
  trigger(b.entry, 'entry', true);
  if (b.goal !== undefined) trigger(b.goal, 'goal', false, true);
  if (!Array.isArray(b.nodes)) return;
  b.nodes.forEach((n, i) => {
    if (n === null || typeof n !== 'object') return;
    const type = (n as { type?: unknown }).type;
    const check = NODE_CHECKS[type as keyof typeof NODE_CHECKS];
    if (!check || !Object.hasOwn(NODE_CHECKS, type as string))
      throw bad(`nodes[${i}].type: one of ${Object.keys(NODE_CHECKS).join(', ')}`);
    const wait = n as { for?: unknown };
    if (type === 'wait' && wait.for && typeof wait.for === 'object' && 'untilLocal' in wait.for)
      checkShape(untilLocalCheck, wait.for, {}, `nodes[${i}].for.`);
    checkShape(check as TypeCheck<TSchema>, n, {}, `nodes[${i}].`);
    if (type === 'wait' && wait.for && typeof wait.for === 'object' && 'until' in wait.for)
      trigger((wait.for as { until: unknown }).until, `nodes[${i}].for.until`, false);
  });
}

export type JourneyStatus = 'draft' | 'active' | 'paused' | 'archived';

export interface JourneyDefinition extends JourneyInput {
  id: string;
  workspaceId: string;
  version: number;
  status: JourneyStatus;
  createdAt: string;
  updatedAt: string;
}

/** Status changes a journey allows: draft → active ⇄ paused → archived (archived is final). */
export const TRANSITIONS: Record<
  'activate' | 'pause' | 'resume' | 'archive',
  { from: JourneyStatus[]; to: JourneyStatus }
> = {
  activate: { from: ['draft'], to: 'active' },
  pause: { from: ['active'], to: 'paused' },
  resume: { from: ['paused'], to: 'active' },
  archive: { from: ['draft', 'active', 'paused'], to: 'archived' },
};

const DUR =
  /^P(?:(\d{1,5})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,7})M)?(?:(\d{1,9}(?:\.\d{1,3})?)S)?)?$/;
/** Longest wait: 10 years. */
export const MAX_WAIT_MS = 3650 * 86_400_000;

/** An ISO 8601 duration in milliseconds (weeks, days, hours, minutes, seconds); undefined if not one. */
export function parseIsoDuration(s: unknown): number | undefined {
  if (typeof s !== 'string' || s === 'P' || s.endsWith('T')) return undefined;
  const m = DUR.exec(s);
  if (!m) return undefined;
  const [, w, d, h, min, sec] = m;
  const ms =
    Number(w ?? 0) * 604_800_000 +
    Number(d ?? 0) * 86_400_000 +
    Number(h ?? 0) * 3_600_000 +
    Number(min ?? 0) * 60_000 +
    Math.round(Number(sec ?? 0) * 1000);
  return ms > 0 && ms <= MAX_WAIT_MS ? ms : undefined;
}

/** Where a node goes next, by outcome name (`next`, `yes`/`no`, `met`/`timeout`, `variant:<i>`). */
export function successors(n: JourneyNode): Array<[string, string | undefined]> {
  switch (n.type) {
    case 'wait':
      return typeof n.for === 'string' || 'untilLocal' in n.for
        ? [['next', n.next]]
        : [
            ['met', n.branches?.met],
            ['timeout', n.branches?.timeout],
          ];
    case 'branch':
      return [
        ['yes', n.yes],
        ['no', n.no],
      ];
    case 'split':
      return n.variants.map((v, i) => [`variant:${i}`, v.next]);
    case 'send':
    case 'webhook':
    case 'update':
    case 'score':
    case 'list':
      return [['next', n.next]];
    case 'exit':
      return [];
    default: {
      const never: never = n;
      throw new Error(`unknown node ${JSON.stringify(never)}`);
    }
  }
}

const bad = (msg: string) => new DefinitionInputError(msg);

/**
 * Validates a journey (shape, then meaning) and answers it normalised. Errors name the
 * field: `nodes[2].next: no node "x"`, `nodes[1].rule: unknown operator "regex"`.
 */
export function checkJourneyInput(body: unknown): JourneyInput {
  checkParts(body);
  checkShape(journeyInputCheck, body);
  const j = body as JourneyInput;
  const ids = new Map<string, number>();
  j.nodes.forEach((n, i) => {
    if (ids.has(n.id)) throw bad(`nodes[${i}].id: "${n.id}" is used twice`);
    ids.set(n.id, i);
  });
  const filter = (where: unknown, path: string) => {
    if (where === undefined) return;
    try {
      compileCondition('x', where, '');
    } catch (err) {
      throw bad(`${path}: ${err instanceof RuleError ? err.detail : (err as Error).message}`);
    }
  };
  if ('event' in j.entry) filter(j.entry.where, 'entry.where');
  checkTimeEntry(j.entry);
  if (j.goal && 'event' in j.goal) filter(j.goal.where, 'goal.where');
  if (j.goal?.within !== undefined && parseIsoDuration(j.goal.within) === undefined)
    throw bad('goal.within: not an ISO 8601 duration such as "P7D" (at most 10 years)');
  j.nodes.forEach((n, i) => {
    const at = `nodes[${i}]`;
    for (const [name, target] of successors(n))
      if (target !== undefined && !ids.has(target)) {
        const field = name.startsWith('variant:')
          ? `variants[${name.slice(8)}].next`
          : name === 'met' || name === 'timeout'
            ? `branches.${name}`
            : name;
        throw bad(`${at}.${field}: no node "${target}"`);
      }
    switch (n.type) {
      case 'wait':
        if (typeof n.for === 'string') {
          if (parseIsoDuration(n.for) === undefined)
            throw bad(`${at}.for: not an ISO 8601 duration such as "PT30M" or "P2D" (at most 10 years)`);
          if (n.branches) throw bad(`${at}.branches: a duration wait has "next", not branches`);
        } else if ('untilLocal' in n.for) {
          if (parseTimeOfDay(n.for.untilLocal.time) === undefined)
            throw bad(`${at}.for.untilLocal.time: not a time of day such as "10:00" or "09:30:00"`);
          if (n.branches) throw bad(`${at}.branches: a wait until a local time has "next", not branches`);
        } else {
          if (parseIsoDuration(n.for.timeout) === undefined)
            throw bad(
              `${at}.for.timeout: not an ISO 8601 duration such as "PT30M" or "P2D" (at most 10 years)`,
            );
          if (n.next !== undefined)
            throw bad(`${at}.next: a wait until something has branches {met, timeout}`);
          if ('event' in n.for.until) filter(n.for.until.where, `${at}.for.until.where`);
        }
        break;
      case 'branch':
        try {
          const rule = compileRule(n.rule);
          if (rule.counts.length > 0)
            throw new RuleError('', 'event_count is not available in journey branches yet');
          if (rule.readsEvent) throw new RuleError('', 'a branch reads the profile, not an event');
        } catch (err) {
          throw bad(`${at}.rule: ${err instanceof RuleError ? err.detail : (err as Error).message}`);
        }
        break;
      case 'send': {
        const settings = n[n.channel];
        if (!settings) throw bad(`${at}.${n.channel}: the ${n.channel} settings are required`);
        for (const other of ['webhook', 'email', 'sms', 'push'] as const)
          if (other !== n.channel && n[other] !== undefined)
            throw bad(`${at}.${other}: not the node's channel`);
        break;
      }
      case 'webhook':
        if (n.data !== undefined && JSON.stringify(n.data).length > MAX_WEBHOOK_DATA_BYTES)
          throw bad(`${at}.data: at most ${MAX_WEBHOOK_DATA_BYTES} bytes of JSON`);
        break;
      case 'score':
        if (n.add === 0) throw bad(`${at}.add: points to add, not 0`);
        break;
      case 'split':
      case 'update':
      case 'list':
      case 'exit':
        break;
      default: {
        const never: never = n;
        throw new Error(`unknown node ${JSON.stringify(never)}`);
      }
    }
  });
  // a run always ends: no step leads back to one before it
  const state = new Map<string, 'open' | 'done'>();
  const visit = (id: string, path: string[]): void => {
    const s = state.get(id);
    if (s === 'done') return;
    if (s === 'open') throw bad(`nodes: a cycle ${[...path, id].join(' → ')} (journeys run forward only)`);
    state.set(id, 'open');
    const n = j.nodes[ids.get(id)!]!;
    for (const [, next] of successors(n)) if (next !== undefined) visit(next, [...path, id]);
    state.set(id, 'done');
  };
  visit(j.nodes[0]!.id, []);
  j.nodes.forEach((n, i) => {
    if (!state.has(n.id)) throw bad(`nodes[${i}]: "${n.id}" cannot be reached from the first node`);
  });
  return j;
}

/** The meaning of a date-trait, broadcast or schedule entry (its shape is checked already). */
function checkTimeEntry(e: JourneyEntry): void {
  if ('dateTrait' in e) {
    if (e.offset !== undefined && parseDayOffset(e.offset) === undefined)
      throw bad('entry.offset: whole days or weeks such as "-P14D" or "P1W" (at most 10 years)');
    if (parseTimeOfDay(e.at) === undefined) throw bad('entry.at: not a time of day such as "09:00"');
  } else if ('broadcast' in e) {
    if (e.broadcast.localTime) {
      if (localDateTime(e.broadcast.at) === undefined)
        throw bad(
          'entry.broadcast.at: with localTime, a local date-time without a zone such as "2026-12-24T09:00"',
        );
    } else if (broadcastInstant(e.broadcast.at) === undefined)
      throw bad('entry.broadcast.at: not an ISO 8601 date-time with a zone such as "2026-12-24T09:00:00Z"');
  } else if ('schedule' in e) {
    try {
      parseCron(e.schedule.cron);
    } catch (err) {
      throw bad(`entry.schedule.cron: ${(err as Error).message}`);
    }
    if (e.schedule.tz !== undefined && !isTimezone(e.schedule.tz))
      throw bad(`entry.schedule.tz: not an IANA time zone such as "Europe/Berlin"`);
  }
}

/** A broadcast's time in ms: an ISO 8601 date-time with `Z` or an offset; undefined if not one. */
export function broadcastInstant(at: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(at)) return undefined;
  const ms = Date.parse(at);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The segment whose members a broadcast or schedule entry enters. */
export function timeEntrySegment(e: JourneyEntry): string | undefined {
  return 'broadcast' in e ? e.broadcast.segment : 'schedule' in e ? e.schedule.segment : undefined;
}

/** The goal's conversion window in ms (see GoalEvent). */
export function conversionWindowMs(def: Pick<JourneyInput, 'goal'>): number {
  return parseIsoDuration(def.goal?.within ?? DEFAULT_CONVERSION_WINDOW) ?? 0;
}

/** Node by id, for the runner. */
export function nodeIndex(def: Pick<JourneyInput, 'nodes'>): Map<string, JourneyNode> {
  return new Map(def.nodes.map((n) => [n.id, n]));
}

/** The signal of an identify that sets a trait some live journey dates by (its properties: those traits). */
export const IDENTIFY_SIGNAL = '$identify';
/** In journeyEventNames: `$trait:<name>`, a trait a date-trait entry reads. */
const TRAIT_SIGNAL = '$trait:';

/**
 * What the processor signals to the journey runner for an event, if a live journey reacts
 * to it (`names` from journeyEventNames): a track event by its name and properties; an
 * event that sets a date trait (an identify's traits, or any call's `context.traits`) as
 * `$identify` with those traits. At most one of each.
 */
export function journeySignalsOf(
  e: {
    workspaceId: string;
    type: string;
    event?: string;
    properties: object;
    traits: object;
    context: object;
  },
  names: ReadonlySet<string>,
): Array<{ event: string; properties: Record<string, unknown> }> {
  const out: Array<{ event: string; properties: Record<string, unknown> }> = [];
  if (e.type === 'track' && e.event && names.has(`${e.workspaceId}\u0000${e.event}`))
    out.push({ event: e.event, properties: e.properties as Record<string, unknown> });
  const ctx = (e.context as { traits?: unknown }).traits;
  const fromContext =
    ctx !== null && typeof ctx === 'object' && !Array.isArray(ctx)
      ? (ctx as Record<string, unknown>)
      : undefined;
  const traits =
    e.type === 'identify' ? { ...fromContext, ...(e.traits as Record<string, unknown>) } : fromContext;
  if (!traits) return out;
  const set = Object.keys(traits).filter((k) => names.has(`${e.workspaceId}\u0000${TRAIT_SIGNAL}${k}`));
  if (set.length > 0)
    out.push({ event: IDENTIFY_SIGNAL, properties: Object.fromEntries(set.map((k) => [k, traits[k]])) });
  return out;
}

/**
 * Event names each workspace's live journeys (active or paused, and the versions people
 * are still on) react to: entry, wait-until and goal events, and `$trait:<name>` for the
 * traits of date-trait entries. The processor publishes a journey signal only for these
 * (`${workspaceId}\u0000${event}`; see journeySignalsOf).
 */
export function journeyEventNames(latest: JourneyDefinition[], versions: JourneyDefinition[]): Set<string> {
  const live = new Set(
    latest
      .filter((j) => j.status === 'active' || j.status === 'paused')
      .map((j) => `${j.workspaceId}/${j.id}`),
  );
  const out = new Set<string>();
  const add = (ws: string, event: string) => out.add(`${ws}\u0000${event}`);
  for (const j of [...latest, ...versions]) {
    if (!live.has(`${j.workspaceId}/${j.id}`)) continue;
    if ('event' in j.entry) add(j.workspaceId, j.entry.event);
    if ('dateTrait' in j.entry) add(j.workspaceId, `${TRAIT_SIGNAL}${j.entry.dateTrait}`);
    if (j.goal && 'event' in j.goal) add(j.workspaceId, j.goal.event);
    for (const n of j.nodes)
      if (n.type === 'wait' && typeof n.for !== 'string' && 'until' in n.for && 'event' in n.for.until)
        add(j.workspaceId, n.for.until.event);
  }
  return out;
}
