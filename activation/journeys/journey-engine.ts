// Walks people through journeys. Three things move a run: a signal (a segment change or a
// journey event) that enters someone or ends a wait, goal or exit rule; a timer at a wait's
// deadline; and the steps that follow without waiting (branch, split, send, update, exit).
//
// One advance computes the path from where the run is to the next wait (or its end) from
// the profile as it is now, then makes it durable in this order:
//   1. effects and ledger rows, produced to Kafka (acks=all): send jobs to the activation
//      retry topic (the send key names campaign × run, so the activation worker sends once
//      however often it is produced), trait updates as identify events with a messageId
//      named after the step (the processor deduplicates them), rows to cdp.journey-ledger;
//   2. the timer of the wait it stops at (a stale timer is ignored when it fires);
//   3. the moves, each a compare-and-set of (run, node) in run-state.lua, which also
//      counts the nodes. A crash before 3 repeats 1 and 2 harmlessly; a worker that finds
//      the run already moved stops there.
// Every step therefore happens once in effect, and survives a kill -9 of any worker: a
// message handled again (redelivered after a crash) re-drives a run it finds under way from
// where it is, taking the steps the crash left undone (see redrive).
import { createHash } from 'node:crypto';
import type { OutgoingMessage, Producer } from '../../runtime/kafka/index.ts';
import { sendOrDeadLetter } from '../../runtime/kafka/send-bounded.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Redis } from '../../runtime/redis.ts';
import { ACTIVATION_HEADERS } from '../../schemas/activation-job.ts';
import type { NormalizedEvent } from '../../schemas/event.ts';
import type { IdentityChange } from '../../schemas/identity-change.ts';
import {
  conversionWindowMs,
  type JourneyNode,
  LISTS_TRAIT,
  parseIsoDuration,
} from '../../schemas/journey.ts';
import type { JourneySignal, JourneyStepRow } from '../../schemas/journey-signal.ts';
import { nextLocalTime } from '../../schemas/journey-time.ts';
import { type SegmentChange, serializeSegmentChange } from '../../schemas/segment-change.ts';
import { eventKey, profileKey, type Topics } from '../../schemas/topics.ts';
import { profileTimezone } from '../policy/local-time.ts';
import { journeyCampaignId } from './journey-campaigns.ts';
import type { CompiledJourney, JourneyRegistry } from './journey-registry.ts';
import type { JourneyTimers } from './journey-timers.ts';
import { type ProfileContext, readProfileContext } from './profile-context.ts';
import type { RunRef, RunState, RunStore } from './run-state.ts';

const MAX_STEPS = 110;

export interface JourneyEngineDeps {
  redis: Redis;
  redisPrefix: string;
  runs: RunStore;
  registry: JourneyRegistry;
  timers: Pick<JourneyTimers, 'schedule' | 'park'>;
  producer: Producer;
  topics: Pick<Topics, 'activationRetry' | 'events' | 'journeyLedger' | 'deadLetter'>;
  now: () => number;
  log: Logger;
  /** For waits until a local time, when the profile has no valid `timezone` trait (IANA). */
  defaultTimezone?: string;
}

interface Move {
  from: string;
  to: string;
  /** Why the run ends when `to` is ''. */
  reason: string;
  /** The way it left a split, branch or wait-until (counted for conversion by branch). */
  arm?: string;
}

/** A number in [0, 1) from a text, the same everywhere (splits are sticky per run). */
function unit(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

export function journeyEngine(deps: JourneyEngineDeps) {
  const row = (
    ref: RunRef,
    version: number,
    run: number,
    node: string,
    step: string,
    detail = '',
    messageId = '',
  ): JourneyStepRow => ({
    workspace_id: ref.workspaceId,
    at: deps.now(),
    journey_id: ref.journeyId,
    version,
    profile_id: ref.profileId,
    run,
    node_id: node,
    step,
    detail,
    message_id: messageId,
  });

  // one message the broker refuses as too large (a person with megabytes of traits) goes
  // to the dead-letter topic instead of stalling the journey's partition
  async function publish(rows: JourneyStepRow[], jobs: OutgoingMessage[], events: OutgoingMessage[]) {
    const bounded = { deadLetterTopic: deps.topics.deadLetter, stage: 'journeys.publish', log: deps.log };
    await Promise.all(
      [
        { topic: deps.topics.activationRetry, messages: jobs },
        { topic: deps.topics.events, messages: events },
        {
          topic: deps.topics.journeyLedger,
          messages: rows.map((r) => ({ key: `${r.workspace_id}:${r.journey_id}`, value: JSON.stringify(r) })),
        },
      ]
        .filter((b) => b.messages.length > 0)
        .map((b) => sendOrDeadLetter(deps.producer, b.topic, b.messages, bounded)),
    );
  }

  /**
   * Moves a run on from where it is until it waits or ends. `arrived`: the run reached its
   * node just now (its wait is recorded as begun). `trigger`: the message that moved it.
   */
  async function advance(
    ref: RunRef,
    state: RunState,
    arrived: boolean,
    trigger?: string | null,
  ): Promise<void> {
    const latest = deps.registry.get(ref.workspaceId, ref.journeyId);
    const j = deps.registry.version(ref.workspaceId, ref.journeyId, state.version);
    if (!latest || !j) {
      deps.log.warn({ ...ref, version: state.version }, 'journey_definition_missing');
      return;
    }
    const now = deps.now();
    if (latest.def.status === 'archived') {
      await publish([row(ref, state.version, state.run, state.node, 'exited', 'archived')], [], []);
      await deps.runs.move(ref, state.run, state.node, '', now, 'archived');
      return;
    }
    if (latest.def.status !== 'active') {
      // paused: they stay where they are, their timer aside until the journey resumes
      await deps.timers.park(ref, state.run, state.node, now);
      return;
    }
    let ctx: ProfileContext | undefined;
    const profile = async () => {
      ctx ??= await readProfileContext(deps.redis, deps.redisPrefix, ref.workspaceId, ref.profileId);
      return ctx;
    };
    const rows: JourneyStepRow[] = [];
    const jobs: OutgoingMessage[] = [];
    const events: OutgoingMessage[] = [];
    const moves: Move[] = [];
    let wake: number | undefined;
    let node = state.node;
    let nodeAt = state.nodeAt;
    const r = (n: string, step: string, detail = '') =>
      rows.push(row(ref, state.version, state.run, n, step, detail, trigger ?? ''));

    for (let i = 0; i < MAX_STEPS; i++) {
      const n = j.nodes.get(node);
      if (!n) {
        moves.push({ from: node, to: '', reason: 'definition_missing' });
        break;
      }
      const step = await decide(ref, state, j, n, nodeAt, now, arrived || i > 0, profile, r, jobs, events);
      if (step.wait !== undefined) {
        wake = step.wait;
        break;
      }
      moves.push({
        from: node,
        to: step.to ?? '',
        reason: step.to === undefined ? step.reason : '',
        ...(step.arm ? { arm: step.arm } : {}),
      });
      if (step.to === undefined) break;
      node = step.to;
      nodeAt = now;
    }
    await publish(rows, jobs, events);
    if (wake !== undefined) await deps.timers.schedule(ref, state.run, node, wake);
    // all moves in one round trip, stopping at the first the run is no longer at
    const done = await deps.runs.movePath(ref, state.run, moves, now);
    if (done < moves.length)
      deps.log.debug({ ...ref, run: state.run, from: moves[done]!.from }, 'journey_step_already_taken');
  }

  type Decision = { to?: string; reason: string; wait?: number; arm?: string };

  async function decide(
    ref: RunRef,
    state: RunState,
    j: CompiledJourney,
    n: JourneyNode,
    nodeAt: number,
    now: number,
    arrived: boolean,
    profile: () => Promise<ProfileContext>,
    r: (node: string, step: string, detail?: string) => void,
    jobs: OutgoingMessage[],
    events: OutgoingMessage[],
  ): Promise<Decision> {
    const end = (reason: string): Decision => ({ reason });
    switch (n.type) {
      case 'wait': {
        let due: number;
        if (typeof n.for !== 'string' && 'untilLocal' in n.for) {
          // the next such local time after arriving, in the zone the profile has now
          const tz = profileTimezone((await profile()).traits, deps.defaultTimezone ?? 'UTC');
          due = nextLocalTime(nodeAt, tz, n.for.untilLocal);
        } else due = nodeAt + (parseIsoDuration(typeof n.for === 'string' ? n.for : n.for.timeout) ?? 0);
        if (due > now) {
          if (arrived) r(n.id, 'waiting', new Date(due).toISOString());
          return { reason: '', wait: due };
        }
        if (typeof n.for === 'string' || 'untilLocal' in n.for) {
          r(n.id, 'waited', typeof n.for === 'string' ? n.for : n.for.untilLocal.time);
          return n.next ? { to: n.next, reason: '' } : end('completed');
        }
        r(n.id, 'timeout', n.for.timeout);
        return { to: n.branches?.timeout, reason: 'completed', arm: 'timeout' };
      }
      case 'branch': {
        const p = await profile();
        const yes = j.rules.get(n.id)!.evaluate(p.rule);
        r(n.id, 'branched', yes ? 'yes' : 'no');
        return { to: yes ? n.yes : n.no, reason: 'completed', arm: yes ? 'yes' : 'no' };
      }
      case 'split': {
        const seed = `${ref.workspaceId}\u0000${ref.journeyId}\u0000${ref.profileId}\u0000${state.run}\u0000${n.id}`;
        if (n.holdout && unit(`${seed}\u0000holdout`) * 100 < n.holdout) {
          r(n.id, 'holdout', `${n.holdout}%`);
          return { reason: 'holdout', arm: 'holdout' };
        }
        const total = n.variants.reduce((s, v) => s + v.weight, 0);
        let pick = unit(seed) * total;
        let i = 0;
        while (i < n.variants.length - 1 && pick >= n.variants[i]!.weight) pick -= n.variants[i++]!.weight;
        r(n.id, 'split', `variant:${i}`);
        return { to: n.variants[i]!.next, reason: 'completed', arm: `variant:${i}` };
      }
      case 'send':
      case 'webhook': {
        const p = await profile();
        const campaignId = journeyCampaignId(ref.journeyId, state.version, n.id);
        jobs.push(sendJob(ref, state, campaignId, p, now));
        r(
          n.id,
          n.type === 'send' ? 'queued_send' : 'queued_webhook',
          `${n.type === 'send' ? n.channel : 'webhook'}:${campaignId}`,
        );
        return n.next ? { to: n.next, reason: '' } : end('completed');
      }
      case 'update':
      case 'score':
      case 'list': {
        const p = await profile();
        const id = p.userId ?? p.anonymousId;
        if (!id) {
          r(n.id, `${n.type}_skipped`, 'no identifier');
        } else {
          events.push(identifyStep(ref, state, n, p.userId, p.anonymousId, id, now));
          r(
            n.id,
            n.type === 'update' ? 'updated' : n.type === 'score' ? 'scored' : `list_${n.action}`,
            n.type === 'update'
              ? Object.keys(n.traits).join(',')
              : n.type === 'score'
                ? `${n.trait}${n.add < 0 ? '' : '+'}${n.add}`
                : n.list,
          );
        }
        return n.next ? { to: n.next, reason: '' } : end('completed');
      }
      case 'exit':
        r(n.id, 'exited', 'exit node');
        return end('exited');
      default: {
        const never: never = n;
        throw new Error(`unknown node ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * A send or webhook step as an activation job (the send key names campaign × run, so the
   * activation worker sends once however often it is produced).
   */
  function sendJob(
    ref: RunRef,
    state: RunState,
    campaignId: string,
    p: ProfileContext,
    now: number,
  ): OutgoingMessage {
    const change: SegmentChange = {
      workspaceId: ref.workspaceId,
      profileId: ref.profileId,
      segmentId: ref.journeyId,
      segmentVersion: state.version,
      type: 'entered',
      epoch: state.run,
      messageId: null,
      occurredAt: new Date(now).toISOString(),
      userId: p.userId,
      traits: p.traits,
    };
    return {
      key: profileKey(ref.workspaceId, ref.profileId),
      // traits bounded as on a segment change (activation reads the rest from Redis)
      value: `{"campaignId":${JSON.stringify(campaignId)},"change":${serializeSegmentChange(change)}}`,
      headers: {
        [ACTIVATION_HEADERS.attempt]: '0',
        [ACTIVATION_HEADERS.notBefore]: String(now),
        [ACTIVATION_HEADERS.firstSeen]: String(now),
      },
    };
  }

  /**
   * A step that changes the profile, as an identify through the pipeline (so segments,
   * history and the timeline see it), named after the step: the processor applies it once.
   */
  function identifyStep(
    ref: RunRef,
    state: RunState,
    n: Extract<JourneyNode, { type: 'update' | 'score' | 'list' }>,
    userId: string | null,
    anonymousId: string | null,
    key: string,
    now: number,
  ): OutgoingMessage {
    const at = new Date(now).toISOString();
    const context: Record<string, unknown> = {
      journey: { id: ref.journeyId, version: state.version, node: n.id },
    };
    if (n.type === 'score') context.traitOps = { increment: { [n.trait]: n.add } };
    if (n.type === 'list') context.traitOps = { [n.action]: { [LISTS_TRAIT]: [n.list] } };
    const e: NormalizedEvent = {
      workspaceId: ref.workspaceId,
      type: 'identify',
      messageId: `jrn-${createHash('sha256')
        .update(
          `${ref.workspaceId}\u0000${ref.journeyId}\u0000${ref.profileId}\u0000${state.run}\u0000${n.id}`,
        )
        .digest('base64url')
        .slice(0, 32)}`,
      userId,
      anonymousId: userId ? null : anonymousId,
      properties: {},
      traits: n.type === 'update' ? n.traits : {},
      context,
      integrations: {},
      timestamp: at,
      receivedAt: at,
      keyKind: 'server',
    };
    return { key: eventKey(ref.workspaceId, key), value: JSON.stringify(e) };
  }

  /** Ends an active run where it is (goal, segment exit), recording why. */
  async function finish(
    ref: RunRef,
    state: RunState,
    step: string,
    reason: string,
    trigger: string | null,
    windowMs = 0,
  ) {
    await publish([row(ref, state.version, state.run, state.node, step, reason, trigger ?? '')], [], []);
    await deps.runs.move(ref, state.run, state.node, '', deps.now(), reason, { windowMs });
  }

  /**
   * The goal reached by someone whose run has ended (completed, exited, held out): counted
   * for the branches they took if within the goal's window of entering, once per run.
   */
  async function convertedAfterExit(
    ref: RunRef,
    state: RunState,
    j: CompiledJourney,
    trigger: string | null,
  ) {
    if (state.run === 0 || !(await deps.runs.convertAfterExit(ref, deps.now(), conversionWindowMs(j.def))))
      return;
    await publish(
      [row(ref, state.version, state.run, '', 'converted_after_exit', 'converted', trigger ?? '')],
      [],
      [],
    );
  }

  async function enter(
    ref: RunRef,
    j: CompiledJourney,
    trigger: string | null,
    occurrence = '',
  ): Promise<boolean> {
    const d = j.def;
    const start = d.nodes[0]!.id;
    const now = deps.now();
    const res = await deps.runs.enter(ref, d.version, start, now, d.reEntry ?? 'never', occurrence);
    if (res.result === 'busy' || res.result === 'again' || res.result === 'erased') return false;
    if (res.result === 'refused') {
      await publish([row(ref, d.version, res.run, '', 'refused', 'reEntry', trigger ?? '')], [], []);
      return false;
    }
    await publish([row(ref, d.version, res.run, start, 'entered', '', trigger ?? '')], [], []);
    await advance(
      ref,
      { active: true, run: res.run, node: start, version: d.version, nodeAt: now, enteredAt: now },
      true,
      trigger,
    );
    return true;
  }

  /**
   * A run a message finds under way that it does not move (already in the journey, or the
   * message handled before): it goes on from where it is. Every step is idempotent (send
   * keys, step messageIds, compare-and-set moves, timers set again at the same time), so
   * this takes exactly the steps a failure part-way (a produce refused, a kill -9 between
   * recording a move and taking the next step) left undone, and nothing twice.
   */
  async function redrive(ref: RunRef) {
    const state = await deps.runs.peek(ref);
    if (state.active) await advance(ref, state, false, null);
  }

  /** A wait until `matches` on the run's current node, met now: take the `met` branch. */
  async function meet(ref: RunRef, state: RunState, j: CompiledJourney, trigger: string | null) {
    const n = j.nodes.get(state.node);
    if (n?.type !== 'wait' || typeof n.for === 'string' || !('until' in n.for)) return;
    const now = deps.now();
    const to = n.branches?.met ?? '';
    await publish([row(ref, state.version, state.run, n.id, 'met', '', trigger ?? '')], [], []);
    if (!(await deps.runs.move(ref, state.run, n.id, to, now, to ? '' : 'completed', { arm: 'met' }))) return;
    if (to) await advance(ref, { ...state, node: to, nodeAt: now }, true, trigger);
  }

  return {
    advance,

    /** A segment entry or exit: entries, then goals, exits and waits of runs under way. */
    async onSegmentChange(c: SegmentChange): Promise<void> {
      for (const j of deps.registry.forSegment(c.workspaceId, c.segmentId)) {
        if (j.def.status !== 'active') continue;
        const ref = { workspaceId: c.workspaceId, journeyId: j.def.id, profileId: c.profileId };
        const e = j.def.entry;
        if ('segment' in e && e.segment === c.segmentId && (e.on === 'enter') === (c.type === 'entered'))
          if (await enter(ref, j, c.messageId)) continue;
        const state = await deps.runs.peek(ref);
        const v = deps.registry.version(c.workspaceId, j.def.id, state.version);
        if (!v) continue;
        const goal =
          v.def.goal && 'segment' in v.def.goal && v.def.goal.segment === c.segmentId && c.type === 'entered';
        if (!state.active) {
          if (goal) await convertedAfterExit(ref, state, v, c.messageId);
          continue;
        }
        if (goal) await finish(ref, state, 'converted', 'converted', c.messageId, conversionWindowMs(v.def));
        else if (v.def.exitOnSegmentExit === c.segmentId && c.type === 'exited')
          await finish(ref, state, 'exited', 'segment_exit', c.messageId);
        else {
          const n = v.nodes.get(state.node);
          if (
            n?.type === 'wait' &&
            typeof n.for !== 'string' &&
            'until' in n.for &&
            'segment' in n.for.until &&
            n.for.until.segment === c.segmentId &&
            c.type === 'entered'
          )
            await meet(ref, state, v, c.messageId);
          else await advance(ref, state, false, c.messageId);
        }
      }
    },

    /** An event of a known person: entries, then goals and waits of runs under way. */
    async onSignal(s: JourneySignal): Promise<void> {
      for (const j of deps.registry.forEvent(s.workspaceId, s.event)) {
        if (j.def.status !== 'active') continue;
        const ref = { workspaceId: s.workspaceId, journeyId: j.def.id, profileId: s.profileId };
        const e = j.def.entry;
        // the event that enters someone does not also end their first wait
        if ('event' in e && e.event === s.event && j.filters.get('entry')!.matches(s.properties))
          if (await enter(ref, j, s.messageId)) continue;
        const state = await deps.runs.peek(ref);
        const v = deps.registry.version(s.workspaceId, j.def.id, state.version);
        if (!v) continue;
        const goal =
          v.def.goal &&
          'event' in v.def.goal &&
          v.def.goal.event === s.event &&
          v.filters.get('goal')!.matches(s.properties);
        if (!state.active) {
          if (goal) await convertedAfterExit(ref, state, v, s.messageId);
          continue;
        }
        if (goal) {
          await finish(ref, state, 'converted', 'converted', s.messageId, conversionWindowMs(v.def));
          continue;
        }
        const n = v.nodes.get(state.node);
        if (
          n?.type === 'wait' &&
          typeof n.for !== 'string' &&
          'until' in n.for &&
          'event' in n.for.until &&
          n.for.until.event === s.event &&
          v.filters.get(n.id)!.matches(s.properties)
        )
          await meet(ref, state, v, s.messageId);
        else await advance(ref, state, false, s.messageId);
      }
    },

    /**
     * Profiles merged into another: one run per journey per person. A merged-away profile's
     * run moves to the survivor (and goes on from there) unless the survivor has one.
     */
    async onIdentityChange(c: IdentityChange): Promise<void> {
      const merged = c.mergedProfileIds.filter((m) => m !== c.profileId);
      if (merged.length === 0) return;
      for (const j of deps.registry.live(c.workspaceId))
        for (const m of merged) {
          const from = { workspaceId: c.workspaceId, journeyId: j.def.id, profileId: m };
          const into = { ...from, profileId: c.profileId };
          const res = await deps.runs.merge(from, into, deps.now());
          if (res.result === 'none') {
            // handled before (a redelivery): the survivor's run goes on from where it is
            const survivor = await deps.runs.peek(into);
            if (survivor.active) await advance(into, survivor, false, c.messageId);
            continue;
          }
          const state = await deps.runs.peek(into);
          await publish(
            [
              row(
                from,
                state.version,
                res.run,
                state.node,
                res.result === 'moved' ? 'merged' : 'exited',
                `into ${c.profileId}`,
                c.messageId,
              ),
            ],
            [],
            [],
          );
          // the moved run's timer was set for the merged-away id: set it again for the survivor
          if (res.result === 'moved' && state.active) await advance(into, state, false, c.messageId);
        }
    },

    /**
     * A time entry (a broadcast, a schedule tick, a date trait's day) of one person: enters
     * them once per `occurrence`, if the journey is active.
     */
    async onTimeEntry(ref: RunRef, occurrence: string): Promise<boolean> {
      const j = deps.registry.get(ref.workspaceId, ref.journeyId);
      if (j?.def.status !== 'active') return false;
      if (await enter(ref, j, occurrence, occurrence)) return true;
      await redrive(ref);
      return false;
    },

    /**
     * Moves a person in flight on version `from` to version `to` (a migration the user
     * asked for), at the node `nodes` maps theirs to (default: the node of the same id),
     * then goes on from there in the new version. `skipped`: no such node in `to` (they
     * stay where they are); `none`: no active run on `from`.
     */
    async migrate(
      ref: RunRef,
      from: number,
      to: number,
      nodes: Readonly<Record<string, string>>,
    ): Promise<'moved' | 'skipped' | 'none'> {
      const state = await deps.runs.peek(ref);
      if (!state.active || state.version !== from) return 'none';
      const target = deps.registry.version(ref.workspaceId, ref.journeyId, to);
      const node = Object.hasOwn(nodes, state.node) ? nodes[state.node]! : state.node;
      if (!target?.nodes.has(node)) {
        await publish(
          [row(ref, from, state.run, state.node, 'migration_skipped', `no node "${node}" in version ${to}`)],
          [],
          [],
        );
        return 'skipped';
      }
      const now = deps.now();
      await publish(
        [row(ref, to, state.run, node, 'migrated', `${from}.${state.node} → ${to}.${node}`)],
        [],
        [],
      );
      if (
        !(await deps.runs.migrate(
          ref,
          state.run,
          { version: from, node: state.node },
          { version: to, node },
          now,
        ))
      )
        return 'none';
      const moved = node !== state.node;
      // its wait in the new version (a new duration, or a new node) decides its timer
      await advance(ref, { ...state, version: to, node, nodeAt: moved ? now : state.nodeAt }, moved, null);
      return 'moved';
    },

    /** A timer fired: the run moves on if it is still where the timer was set. */
    async onDue(ref: RunRef, run: number, node: string): Promise<void> {
      const state = await deps.runs.peek(ref);
      if (!state.active || state.run !== run || state.node !== node) return;
      await advance(ref, state, false, null);
    },
  };
}
export type JourneyEngine = ReturnType<typeof journeyEngine>;
