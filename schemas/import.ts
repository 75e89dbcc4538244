// Bulk imports of traits and consent (query/imports/): the job as stored in Redis and shown
// by GET /v1/imports/{id}, and where it is kept.
import { workspaceKeys } from './redis-keys.ts';

export const IMPORT_KINDS = ['traits', 'consent'] as const;
export type ImportKind = (typeof IMPORT_KINDS)[number];
export const IMPORT_FORMATS = ['csv', 'ndjson'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

export const IMPORT_ID = /^imp_[0-9a-f]{32}$/;

/** `processing` resumes after a restart from committedLine; `failed` says why in `error`. */
export type ImportStatus = 'processing' | 'done' | 'failed';

export interface ImportJob {
  id: string;
  workspaceId: string;
  kind: ImportKind;
  format: ImportFormat;
  status: ImportStatus;
  /** SHA-256 of the uploaded bytes: the same file gives the same messageIds. */
  sha256: string;
  bytes: number;
  requestedBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** An earlier finished import of the same kind and file: nothing was applied again. */
  duplicateOf: string | null;
  /** Data rows read so far (header and blank lines not counted). */
  rowsRead: number;
  rowsAccepted: number;
  rowsRejected: number;
  /** Every line up to this one is done (produced and acknowledged, consent written). */
  committedLine: number;
  error: string | null;
}

/** One rejected row as GET /v1/imports/{id}/errors lists it. */
export interface ImportRowError {
  line: number;
  reason: string;
}

export function importKeys(prefix: string, ws: string) {
  const tag = workspaceKeys(prefix, ws).tag;
  return {
    job: (id: string) => `${tag}:import:${id}`,
    errors: (id: string) => `${tag}:import:${id}:errors`,
    lease: (id: string) => `${tag}:import:${id}:lease`,
    /** ids of the workspace's imports still processing (bounded: MAX_ACTIVE_IMPORTS) */
    active: `${tag}:imports:active`,
    /** sorted by creation time */
    list: `${tag}:imports`,
    /** `<kind>:<sha256>` → the id of the finished import of that file */
    byHash: `${tag}:imports:byhash`,
  };
}

/** Imports under way in every workspace (`<ws>/<id>`), for resuming after a restart. */
export const importsActiveKey = (prefix: string) => `${prefix}:imports:active`;
