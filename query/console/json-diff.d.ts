// Types of json-diff.js (plain JS served to the browser as is), for its Node test.
export type DiffKind = 'added' | 'removed' | 'changed' | 'same';
export interface DiffRow {
  path: string;
  kind: DiffKind;
  before: string;
  after: string;
}
export function flatten(v: unknown, prefix?: string, out?: Map<string, unknown>): Map<string, unknown>;
export function show(v: unknown): string;
export function diff(before: unknown, after: unknown): DiffRow[];
export function counts(rows: DiffRow[]): Record<DiffKind, number>;
