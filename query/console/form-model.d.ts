// Types of form-model.js (plain JS served to the browser as is), for its Node test.
export const FIELD_TYPES: string[];
export interface FieldState {
  name: string;
  label: string;
  type: string;
  required: boolean;
  trait: string;
  maxLength?: string;
  pattern?: string;
  options?: string;
  min?: string;
  max?: string;
  value?: string;
}
export interface ConsentState {
  name: string;
  purpose: string;
  channel: string;
  text: string;
  required: boolean;
}
export interface FormState {
  name: string;
  fields: FieldState[];
  consents: ConsentState[];
  successKind: 'message' | 'redirect';
  message: string;
  redirect: string;
}
export interface BlockState {
  type: string;
  [k: string]: string | number | undefined;
}
export interface PageState {
  name: string;
  slug: string;
  title: string;
  description: string;
  ab: boolean;
  blocks: BlockState[];
  variants: Array<{ id: string; weight: string; blocks: BlockState[] }>;
}
export function parseApiError(err: unknown): { path: string; message: string } | null;
export function errorTarget(path: string, keys: string[]): string | null;
export function moved<T>(list: T[], i: number, d: -1 | 0 | 1): T[];
export function blankField(i: number): FieldState;
export function blankConsent(i: number): ConsentState;
export function formState(def: unknown): FormState;
export function formBody(s: FormState): Record<string, unknown>;
export function formKeys(s: FormState): string[];
export const blank: Record<'heading' | 'text' | 'image' | 'form' | 'button', () => BlockState>;
export function copyBlocks(bs: BlockState[]): BlockState[];
export function pageState(def: unknown): PageState;
export function pageBody(s: PageState): Record<string, unknown>;
export function pageKeys(s: PageState): string[];
export function blockProblem(b: BlockState): [string, string] | null;
export function refinePageError(
  p: { path: string; message: string },
  s: PageState,
): { path: string; message: string };
