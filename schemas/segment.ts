import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

export const SegmentInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    rule: Type.Unknown(),
  },
  { additionalProperties: false },
);
export type SegmentInput = Static<typeof SegmentInput>;
export const segmentInputCheck = TypeCompiler.Compile(SegmentInput);

export interface SegmentDefinition {
  id: string;
  workspaceId: string;
  name: string;
  description?: string;
  rule: unknown;
  version: number;
  status: 'active';
  createdAt: string;
  updatedAt: string;
}

/** Progress of evaluating a segment version over the profiles that existed before it. */
export interface BackfillStatus {
  version: number;
  status: 'backfilling' | 'ready';
  scanned: number;
  startedAt: string;
  finishedAt: string | null;
}
