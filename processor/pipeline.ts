// The processor's batch pipeline. Order matters:
//   parse → apply to identity graph + profile (Redis, one Lua call per event, pipelined)
//   → evaluate segments on each touched profile's final state in this batch
//   → publish transitions to cdp.segment-changes (acknowledged)
//   → record memberships (compare-and-set)
// Publishing before recording means a crash in between is repaired on redelivery: the
// event is a duplicate by then, but the profile is still re-evaluated, the membership
// still shows the old epoch, and the same transition (same epoch) is published again,
// which activation recognises. Offsets are committed by the runner after all of this.
import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { BatchHandler, OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import type { NormalizedEvent } from '../schemas/event.ts';
import { workspaceKeys } from '../schemas/redis-keys.ts';
import type { SegmentChange } from '../schemas/segment-change.ts';
import { DLQ_HEADERS, profileKey, type Topics } from '../schemas/topics.ts';
import {
  type ApplyOptions,
  defineApplyEvent,
  type ProfileState,
  parseApplyResult,
  queueApplyEvent,
} from './apply-event.ts';
import { evaluateSegments } from './evaluate-segments.ts';
import { parseEvent } from './parse-event.ts';
import type { SegmentRegistry } from './segment-registry.ts';

const RECORD = readFileSync(new URL('./record-membership.lua', import.meta.url), 'utf8');

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cdpRecordMembership(
      tag: string,
      pid: string,
      sid: string,
      from: number,
      now: number,
    ): Result<number, Context>;
  }
}

export interface ProcessorDeps {
  redis: Redis;
  producer: Producer;
  topics: Topics;
  registry: SegmentRegistry;
  redisPrefix: string;
  apply: ApplyOptions;
  log: Logger;
  now?: () => Date;
}

export function createProcessorPipeline(deps: ProcessorDeps): BatchHandler {
  defineApplyEvent(deps.redis);
  deps.redis.defineCommand('cdpRecordMembership', { numberOfKeys: 1, lua: RECORD });
  const now = deps.now ?? (() => new Date());

  return async (batch) => {
    const dead: OutgoingMessage[] = [];
    const events: NormalizedEvent[] = [];
    for (const m of batch.messages) {
      const p = parseEvent(m);
      if (p.ok) events.push(p.event);
      else {
        deps.log.warn(
          { topic: m.topic, partition: m.partition, offset: m.offset, reason: p.reason },
          'event_dead_lettered',
        );
        dead.push({
          key: m.key ?? '',
          value: m.value ?? Buffer.alloc(0),
          headers: {
            [DLQ_HEADERS.reason]: p.reason,
            [DLQ_HEADERS.source]: m.topic,
            [DLQ_HEADERS.partition]: String(m.partition),
            [DLQ_HEADERS.offset]: m.offset,
            [DLQ_HEADERS.stage]: 'processor.parse',
          },
        });
      }
    }

    // 1. identity + profile, pipelined: one round trip for the whole batch
    const pipe = deps.redis.pipeline();
    for (const e of events)
      queueApplyEvent(pipe, workspaceKeys(deps.redisPrefix, e.workspaceId).tag, e, deps.apply);
    const results = events.length > 0 ? ((await pipe.exec()) ?? []) : [];

    // 2. the final state of each profile this batch touched
    const latest = new Map<string, { ws: string; state: ProfileState; event: NormalizedEvent }>();
    const mergedAway = new Set<string>();
    results.forEach(([err, raw], i) => {
      if (err) throw err;
      const state = parseApplyResult(raw);
      const event = events[i]!;
      if (!state) return;
      for (const m of state.merged) mergedAway.add(`${event.workspaceId}/${m}`);
      for (const c of state.conflicts)
        deps.log.info(
          { workspaceId: event.workspaceId, profileId: state.profileId, identity: c },
          'identity_link_refused',
        );
      latest.set(`${event.workspaceId}/${state.profileId}`, { ws: event.workspaceId, state, event });
    });

    // 3. segment transitions
    const changes: Array<{ ws: string; change: SegmentChange; from: number }> = [];
    const at = now();
    for (const [k, { ws, state, event }] of latest) {
      if (mergedAway.has(k)) continue;
      const segments = deps.registry.forWorkspace(ws);
      if (segments.length === 0) continue;
      for (const t of evaluateSegments(segments, state, event as unknown as Record<string, unknown>)) {
        const userEntry = state.identities.find((i) => i.startsWith('user:'));
        changes.push({
          ws,
          from: t.fromEpoch,
          change: {
            workspaceId: ws,
            profileId: state.profileId,
            segmentId: t.segmentId,
            segmentVersion: t.segmentVersion,
            type: t.type,
            epoch: t.fromEpoch + 1,
            messageId: event.messageId,
            occurredAt: at.toISOString(),
            userId: userEntry ? userEntry.slice(5) : null,
            traits: state.traits,
          },
        });
      }
    }

    // 4. publish, then 5. record
    if (changes.length > 0) {
      await deps.producer.send(
        deps.topics.segmentChanges,
        changes.map(({ change }) => ({
          key: profileKey(change.workspaceId, change.profileId),
          value: JSON.stringify(change),
        })),
      );
      const rec = deps.redis.pipeline();
      for (const { ws, change, from } of changes)
        (rec as unknown as Redis).cdpRecordMembership(
          workspaceKeys(deps.redisPrefix, ws).tag,
          change.profileId,
          change.segmentId,
          from,
          at.getTime(),
        );
      await rec.exec();
    }
    if (dead.length > 0) await deps.producer.send(deps.topics.deadLetter, dead);
  };
}
