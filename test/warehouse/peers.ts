// Shared pieces of the warehouse suites: export definitions as the API stores them, events
// produced as ingest does, and the exported files read back with a real Parquet reader (chDB).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { query } from 'chdb';
import type { Producer as KafkaProducer } from 'kafkajs';
import type { WarehouseExport, WarehouseTarget } from '../../schemas/warehouse.ts';
import { uniqueId } from '../harness.ts';

export function exportDef(
  workspaceId: string,
  target: WarehouseTarget,
  over: Partial<WarehouseExport> = {},
): WarehouseExport {
  const at = new Date().toISOString();
  return {
    id: uniqueId('wh_'),
    workspaceId,
    name: 'test export',
    datasets: ['events', 'identity', 'segment_changes'],
    target,
    flushRows: 50,
    flushMs: 500,
    status: 'active',
    version: 1,
    createdAt: at,
    updatedAt: at,
    ...over,
  };
}

/** Track events as ingest produces them (key workspace:userId), `extra` merged into each. */
export async function produceEvents(
  producer: KafkaProducer,
  topic: string,
  workspaceId: string,
  events: Array<{ user: string; seq: number; extra?: Record<string, unknown> }>,
): Promise<string[]> {
  const ids: string[] = [];
  const now = new Date().toISOString();
  await producer.send({
    topic,
    acks: -1,
    messages: events.map((e) => {
      const messageId = uniqueId('msg-');
      ids.push(messageId);
      return {
        key: `${workspaceId}:${e.user}`,
        value: JSON.stringify({
          workspaceId,
          type: 'track',
          event: 'Export Test',
          messageId,
          userId: e.user,
          anonymousId: null,
          properties: { seq: e.seq },
          traits: {},
          context: { library: { name: 'test' } },
          integrations: {},
          timestamp: now,
          receivedAt: now,
          ...e.extra,
        }),
      };
    }),
  });
  return ids;
}

/** Every `.parquet` file under `dir` (relative paths), sorted; temporary files are listed apart. */
export function listFiles(dir: string): { parquet: string[]; other: string[] } {
  const parquet: string[] = [];
  const other: string[] = [];
  const walk = (d: string, rel: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      if (statSync(p).isDirectory()) walk(p, r);
      else if (n.endsWith('.parquet')) parquet.push(r);
      else other.push(r);
    }
  };
  walk(dir, '');
  return { parquet: parquet.sort(), other: other.sort() };
}

/** Rows of a Parquet glob read by chDB (ClickHouse's own Parquet reader), as JSON objects. */
export function readParquet<T = Record<string, unknown>>(source: string, columns = '*'): T[] {
  const text = query(`SELECT ${columns} FROM ${source}`, 'JSONEachRow');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

export const fileSource = (glob: string) => `file('${glob.replace(/'/g, "\\'")}', Parquet)`;

/**
 * Checks file names as the exporter promises them: per dataset, lane and partition, the
 * offset ranges of different files never overlap (a range's files of different days share it).
 */
export function overlappingRanges(paths: string[]): string[] {
  const byLane = new Map<string, Array<{ from: number; to: number; path: string }>>();
  for (const p of paths) {
    const m = /^([a-z_]+)\/dt=\d{4}-\d{2}-\d{2}\/((?:overflow-)?p\d+)-(\d{12})-(\d{12})\.parquet$/.exec(p);
    if (!m) return [`unexpected name ${p}`];
    const key = `${m[1]}/${m[2]}`;
    const list = byLane.get(key) ?? [];
    list.push({ from: Number(m[3]), to: Number(m[4]), path: p });
    byLane.set(key, list);
  }
  const problems: string[] = [];
  for (const list of byLane.values()) {
    const ranges = [...new Map(list.map((r) => [`${r.from}-${r.to}`, r])).values()].sort(
      (a, b) => a.from - b.from,
    );
    for (let i = 1; i < ranges.length; i++)
      if (ranges[i]!.from <= ranges[i - 1]!.to)
        problems.push(`${ranges[i - 1]!.path} overlaps ${ranges[i]!.path}`);
  }
  return problems;
}
