// Data exports (POST /v1/exports): a segment's members, an event query or a whole BI view,
// as CSV or Parquet, written in slices by a job whose progress can be read while it runs.
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/** The BI views a `table` export may name, each with the time column it is sliced by. */
export const EXPORT_TABLES = {
  bi_events: 'timestamp',
  bi_identities: 'linked_at',
  bi_touchpoints: 'timestamp',
  bi_conversions: 'timestamp',
  bi_segment_membership: 'at',
  bi_segment_members: 'since',
  bi_sends: 'at',
  bi_journey_steps: 'at',
  bi_consent: 'at',
  bi_audit: 'at',
} as const;
export type ExportTable = keyof typeof EXPORT_TABLES;

const Time = Type.String({ maxLength: 40, description: 'ISO 8601; `to` is exclusive' });
const closed = { additionalProperties: false };

export const ExportInput = Type.Object(
  {
    format: Type.Union([Type.Literal('csv'), Type.Literal('parquet')]),
    segment: Type.Optional(
      Type.Object(
        { id: Type.String({ minLength: 1, maxLength: 128 }) },
        {
          ...closed,
          description: "the segment's members now: profile id, identifiers, traits, when they entered",
        },
      ),
    ),
    events: Type.Optional(
      Type.Object(
        {
          from: Time,
          to: Time,
          events: Type.Optional(
            Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 50 }),
          ),
          where: Type.Optional(Type.Unknown({ description: 'JSON Logic filter, as in analytics' })),
        },
        { ...closed, description: 'events in a range (bi_events columns), deduplicated, with person_id' },
      ),
    ),
    table: Type.Optional(
      Type.Object(
        {
          name: Type.Union(Object.keys(EXPORT_TABLES).map((t) => Type.Literal(t))),
          from: Type.Optional(Time),
          to: Type.Optional(Time),
        },
        { ...closed, description: "a whole BI view (the workspace's rows), optionally in a range" },
      ),
    ),
  },
  closed,
);
export type ExportInput = Static<typeof ExportInput>;
export const exportInputCheck = TypeCompiler.Compile(ExportInput);

export type ExportStatus = 'pending' | 'running' | 'done' | 'failed' | 'expired';

/** One slice of the work: a time range [fromMs, toMs) with its row count, or a page of members. */
export interface ExportSlice {
  fromMs: number;
  toMs: number;
  rows: number;
}

export interface ExportJob {
  id: string;
  workspaceId: string;
  status: ExportStatus;
  format: 'csv' | 'parquet';
  /** The request's source: one of segment, events, table. */
  source: Omit<ExportInput, 'format'>;
  requestedBy: string;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  expiresAt: string | null;
  /** Rows planned (known once planned) and written so far. */
  rowsTotal: number | null;
  rowsDone: number;
  slicesTotal: number | null;
  slicesDone: number;
  /** Size of the finished file. */
  bytes: number | null;
  error: string | null;
}
