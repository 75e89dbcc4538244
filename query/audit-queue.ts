// Writes the audit rows other services queued in Redis (schemas/audit-queue.ts) to
// ClickHouse audit_log. A batch is claimed in one script (its scores moved to a lease), so
// several query instances share the queue; a worker that dies leaves its claims to come due
// again after the lease (at-least-once: a row may then be written twice, never lost).
import type { ClickHouseClient } from '../runtime/clickhouse.ts';
import { errorMessage } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import type { Redis } from '../runtime/redis.ts';
import { auditDueKey, type QueuedAudit } from '../schemas/audit-queue.ts';
import { recordAudit } from './audit.ts';

const CLAIM = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
return due`;

export interface AuditQueueDeps {
  redis: Redis;
  clickhouse: ClickHouseClient;
  redisPrefix: string;
  log: Logger;
  now: () => Date;
  leaseMs?: number;
  intervalMs?: number;
}

export function startAuditQueueWorker(deps: AuditQueueDeps): {
  stop(): Promise<void>;
  tick(): Promise<number>;
} {
  const key = auditDueKey(deps.redisPrefix);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  const tick = async (): Promise<number> => {
    const now = deps.now().getTime();
    const claimed = (await deps.redis.eval(
      CLAIM,
      1,
      key,
      now,
      now + (deps.leaseMs ?? 60_000),
      100,
    )) as string[];
    let written = 0;
    for (const member of claimed) {
      if (stopped) break;
      let a: QueuedAudit;
      try {
        a = JSON.parse(member) as QueuedAudit;
      } catch {
        await deps.redis.zrem(key, member);
        continue;
      }
      await recordAudit(
        deps.clickhouse,
        {
          workspaceId: a.workspaceId,
          actor: a.actor,
          action: a.action,
          entityType: a.entityType,
          entityId: a.entityId,
          before: a.before,
          after: a.after,
        },
        new Date(a.at),
      );
      await deps.redis.zrem(key, member);
      written++;
    }
    return written;
  };

  const loop = () => {
    running = tick()
      .catch((err) => deps.log.warn({ err: errorMessage(err) }, 'audit_queue_worker_failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, deps.intervalMs ?? 500);
      });
  };
  loop();
  return {
    tick,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
