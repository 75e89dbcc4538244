// One Kafka message as a warehouse row, and rows as a Parquet file. The columns are fixed per
// dataset (a warehouse table's schema does not drift with what clients send): the known
// fields as typed columns, the open-ended ones (properties, traits, context) as JSON text,
// and the Kafka partition and offset, which identify a row across files.
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { IncomingMessage } from '../runtime/kafka/index.ts';
import type { WarehouseDataset } from '../schemas/warehouse.ts';

type ColumnType = 'STRING' | 'INT32' | 'INT64' | 'TIMESTAMP';
type Value = string | number | bigint | Date | null;

export interface Row {
  workspaceId: string;
  /** The UTC day (YYYY-MM-DD) the row is filed under. */
  day: string;
  values: Value[];
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const int = (v: unknown): bigint | null =>
  typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : null;
const json = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(v));
/** A date within the years 1970–9999, or null: nothing out of range reaches a TIMESTAMP column. */
const date = (v: unknown): Date | null => {
  if (typeof v !== 'string') return null;
  const ms = Date.parse(v);
  return Number.isFinite(ms) && ms >= 0 && ms < 253402300800000 ? new Date(ms) : null;
};
const dayOf = (d: Date) => d.toISOString().slice(0, 10);

interface DatasetSpec {
  columns: Array<{ name: string; type: ColumnType }>;
  /** The message's row, or a reason it has none (not JSON, no workspace, no usable time). */
  row(v: Record<string, unknown>, m: IncomingMessage): Omit<Row, 'workspaceId'> | string;
  /** The field that files the row by day (server-assigned, never a client's clock). */
}

const KAFKA_COLUMNS: Array<{ name: string; type: ColumnType }> = [
  { name: 'kafka_partition', type: 'INT32' },
  { name: 'kafka_offset', type: 'INT64' },
];
const kafkaValues = (m: IncomingMessage): Value[] => [m.partition, BigInt(m.offset)];

export const DATASETS: Record<WarehouseDataset, DatasetSpec> = {
  events: {
    columns: [
      { name: 'workspace_id', type: 'STRING' },
      { name: 'message_id', type: 'STRING' },
      { name: 'type', type: 'STRING' },
      { name: 'event', type: 'STRING' },
      { name: 'name', type: 'STRING' },
      { name: 'user_id', type: 'STRING' },
      { name: 'anonymous_id', type: 'STRING' },
      { name: 'group_id', type: 'STRING' },
      { name: 'previous_id', type: 'STRING' },
      { name: 'timestamp', type: 'TIMESTAMP' },
      { name: 'received_at', type: 'TIMESTAMP' },
      { name: 'properties', type: 'STRING' },
      { name: 'traits', type: 'STRING' },
      { name: 'context', type: 'STRING' },
      ...KAFKA_COLUMNS,
    ],
    row(v, m) {
      // filed by the day ingest received it: a client's timestamp can be anything
      const received = date(v.receivedAt);
      if (!received) return 'no usable receivedAt';
      return {
        day: dayOf(received),
        values: [
          str(v.workspaceId),
          str(v.messageId),
          str(v.type),
          str(v.event),
          str(v.name),
          str(v.userId),
          str(v.anonymousId),
          str(v.groupId),
          str(v.previousId),
          date(v.timestamp),
          received,
          json(v.properties),
          json(v.traits),
          json(v.context),
          ...kafkaValues(m),
        ],
      };
    },
  },
  identity: {
    columns: [
      { name: 'workspace_id', type: 'STRING' },
      { name: 'profile_id', type: 'STRING' },
      { name: 'identifiers', type: 'STRING' },
      { name: 'merged_profile_ids', type: 'STRING' },
      { name: 'version', type: 'INT64' },
      { name: 'message_id', type: 'STRING' },
      { name: 'occurred_at', type: 'TIMESTAMP' },
      { name: 'part', type: 'INT64' },
      { name: 'parts', type: 'INT64' },
      ...KAFKA_COLUMNS,
    ],
    row(v, m) {
      // the processor's clock; the Kafka timestamp when it is not readable
      const at = date(v.occurredAt) ?? new Date(m.timestamp);
      return {
        day: dayOf(at),
        values: [
          str(v.workspaceId),
          str(v.profileId),
          json(v.identifiers),
          json(v.mergedProfileIds),
          int(v.version),
          str(v.messageId),
          at,
          int(v.part),
          int(v.parts),
          ...kafkaValues(m),
        ],
      };
    },
  },
  segment_changes: {
    columns: [
      { name: 'workspace_id', type: 'STRING' },
      { name: 'profile_id', type: 'STRING' },
      { name: 'segment_id', type: 'STRING' },
      { name: 'segment_version', type: 'INT64' },
      { name: 'type', type: 'STRING' },
      { name: 'epoch', type: 'INT64' },
      { name: 'message_id', type: 'STRING' },
      { name: 'occurred_at', type: 'TIMESTAMP' },
      { name: 'user_id', type: 'STRING' },
      { name: 'traits', type: 'STRING' },
      ...KAFKA_COLUMNS,
    ],
    row(v, m) {
      const at = date(v.occurredAt) ?? new Date(m.timestamp);
      return {
        day: dayOf(at),
        values: [
          str(v.workspaceId),
          str(v.profileId),
          str(v.segmentId),
          int(v.segmentVersion),
          str(v.type),
          int(v.epoch),
          str(v.messageId),
          at,
          str(v.userId),
          json(v.traits),
          ...kafkaValues(m),
        ],
      };
    },
  },
};

/**
 * A message's row for `dataset`, or a string saying why it has none. Messages are read
 * whole but only as JSON: a value that is not a JSON object, or has no workspace, is skipped
 * (and counted), never a stalled partition.
 */
export function toRow(dataset: WarehouseDataset, m: IncomingMessage): Row | string {
  if (!m.value) return 'empty message';
  let v: unknown;
  try {
    v = JSON.parse(m.value.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  if (typeof o.workspaceId !== 'string' || o.workspaceId === '') return 'no workspaceId';
  const r = DATASETS[dataset].row(o, m);
  return typeof r === 'string' ? r : { workspaceId: o.workspaceId, ...r };
}

/** The rows (all of one dataset) as one Parquet file. */
export function toParquet(dataset: WarehouseDataset, rows: Row[]): Buffer {
  const { columns } = DATASETS[dataset];
  const buf = parquetWriteBuffer({
    columnData: columns.map((c, i) => ({
      name: c.name,
      type: c.type,
      data: rows.map((r) => r.values[i] ?? null),
    })),
  });
  return Buffer.from(buf);
}
