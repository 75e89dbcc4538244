// Validation of imported rows (pure): a CSV header and its records, or a JSON line, to a
// traits row or a consent decision, or the reason it is rejected. Reasons name columns and
// limits but never repeat a value from the file (it may be personal data or markup); a
// column name from the header is shown quoted, stripped of control characters and cut short.
import { isJunkId } from '../../schemas/event.ts';
import type { ImportKind } from '../../schemas/import.ts';
import { shapeProblem, UNSAFE_KEYS } from '../../schemas/json-shape.ts';

export const LIMITS = {
  idChars: 256,
  emailChars: 320,
  traitName: 128,
  traitValueChars: 8192,
  traits: 200,
  traitsJsonChars: 32_768,
  sourceChars: 200,
  textChars: 2000,
};

const SCOPE = /^[a-z0-9_-]{1,40}$/;
const EMAIL = /^[^\s@]+@[^\s@]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const TRAIT_NAME = /^[^\u0000-\u001f\u007f]+$/;
/** Trait names the pipeline keeps for itself or that would be unsafe as object keys. */
const RESERVED_TRAITS = new Set(['__proto__', 'constructor', 'prototype']);
/** Decisions dated further ahead than this are refused (a wrong clock or a typo). */
const FUTURE_SLACK_MS = 5 * 60_000;

/** A name from the file as a reason may show it. */
export const shown = (s: string) =>
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it strips
  JSON.stringify(s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').slice(0, 64));

export interface TraitsRow {
  kind: 'traits';
  line: number;
  userId?: string;
  email?: string;
  atMs?: number;
  traits: Record<string, unknown>;
}

export interface ConsentRow {
  kind: 'consent';
  line: number;
  userId?: string;
  email?: string;
  channel: string;
  purpose: string;
  subscribed: boolean;
  atMs: number;
  /** Where the decision was made (the CRM, the preference centre), kept as proof. */
  origin: string;
  text?: string;
}

export type ImportRow = TraitsRow | ConsentRow;
export type Checked = { ok: true; row: ImportRow } | { ok: false; line: number; reason: string };

class RowError extends Error {}
const fail = (reason: string): never => {
  throw new RowError(reason);
};

const ID_COLUMNS = ['userId', 'email'];
const CONSENT_COLUMNS = [...ID_COLUMNS, 'channel', 'purpose', 'status', 'timestamp', 'source', 'text'];

/** The header of a CSV file: its columns, checked; throws an Error with the reason. */
export function checkHeader(kind: ImportKind, fields: string[]): string[] {
  const cols = fields.map((f) => f.trim());
  const seen = new Set<string>();
  for (const c of cols) {
    if (c === '') throw new Error('header: an empty column name');
    if (seen.has(c)) throw new Error(`header: column ${shown(c)} appears twice`);
    seen.add(c);
    if (kind === 'consent' && !CONSENT_COLUMNS.includes(c))
      throw new Error(`header: unknown column ${shown(c)} (consent columns: ${CONSENT_COLUMNS.join(', ')})`);
    if (kind === 'traits' && !ID_COLUMNS.includes(c) && c !== 'timestamp') checkTraitName(c, 'header');
  }
  if (!cols.includes('userId') && !cols.includes('email'))
    throw new Error('header: needs a userId or email column');
  if (kind === 'consent')
    for (const c of ['channel', 'status', 'timestamp', 'source'])
      if (!cols.includes(c)) throw new Error(`header: needs a ${c} column`);
  if (kind === 'traits' && cols.length > LIMITS.traits + 3)
    throw new Error(`header: over ${LIMITS.traits} traits`);
  return cols;
}

function checkTraitName(name: string, where: string) {
  if (name.length > LIMITS.traitName) fail(`${where}: a trait name over ${LIMITS.traitName} characters`);
  if (!TRAIT_NAME.test(name)) fail(`${where}: trait name ${shown(name)} has control characters`);
  if (RESERVED_TRAITS.has(name)) fail(`${where}: trait name ${shown(name)} is not allowed`);
}

function optString(v: unknown, field: string, max: number): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') fail(`${field}: a string`);
  const s = (v as string).trim();
  if (s === '') return undefined;
  if (s.length > max) fail(`${field}: over ${max} characters`);
  return s;
}

function identifiers(rec: Record<string, unknown>): { userId?: string; email?: string } {
  const userId = optString(rec.userId, 'userId', LIMITS.idChars);
  if (userId !== undefined && isJunkId(userId)) fail('userId: a placeholder, not an id');
  let email = optString(rec.email, 'email', LIMITS.emailChars)?.toLowerCase();
  if (email !== undefined && !EMAIL.test(email)) fail('email: not an email address');
  if (userId === undefined && email === undefined) fail('needs a userId or an email');
  if (email === '') email = undefined;
  return { ...(userId !== undefined && { userId }), ...(email !== undefined && { email }) };
}

function time(v: unknown, field: string, required: boolean, nowMs: number): number | undefined {
  const s = optString(v, field, 64);
  if (s === undefined) return required ? fail(`${field}: required (ISO 8601)`) : undefined;
  // a date with a time needs a zone, so a file read in another place means the same instant
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/.test(s))
    fail(`${field}: not an ISO 8601 date (YYYY-MM-DD or with a time and zone)`);
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) fail(`${field}: not a date`);
  if (ms > nowMs + FUTURE_SLACK_MS) fail(`${field}: in the future`);
  if (ms < Date.UTC(1990, 0, 1)) fail(`${field}: before 1990`);
  return ms;
}

function checkTraits(traits: Record<string, unknown>): Record<string, unknown> {
  const names = Object.keys(traits);
  if (names.length > LIMITS.traits) fail(`traits: over ${LIMITS.traits}`);
  const out: Record<string, unknown> = {};
  for (const n of names) {
    checkTraitName(n, 'traits');
    const v = traits[n];
    if (typeof v === 'string' && v.length > LIMITS.traitValueChars)
      fail(`traits.${shown(n)}: over ${LIMITS.traitValueChars} characters`);
    if (typeof v === 'number' && !Number.isFinite(v)) fail(`traits.${shown(n)}: not a finite number`);
    out[n] = v;
  }
  if (JSON.stringify(out).length > LIMITS.traitsJsonChars)
    fail(`traits: over ${LIMITS.traitsJsonChars} characters as JSON`);
  return out;
}

function consentOf(rec: Record<string, unknown>, line: number, nowMs: number): ConsentRow {
  const ids = identifiers(rec);
  const channel = optString(rec.channel, 'channel', 40);
  if (channel === undefined) fail('channel: required');
  if (!SCOPE.test(channel as string) && channel !== '*') fail('channel: a-z, 0-9, _ or - (up to 40), or *');
  const purpose = optString(rec.purpose, 'purpose', 40) ?? '*';
  if (!SCOPE.test(purpose) && purpose !== '*') fail('purpose: a-z, 0-9, _ or - (up to 40), or *');
  const status = optString(rec.status, 'status', 20)?.toLowerCase();
  if (status !== 'subscribed' && status !== 'revoked') fail('status: subscribed or revoked');
  const origin = optString(rec.source, 'source', LIMITS.sourceChars);
  if (origin === undefined) fail('source: required (where the decision was made, kept as proof)');
  const text = optString(rec.text, 'text', LIMITS.textChars);
  return {
    kind: 'consent',
    line,
    ...ids,
    channel: channel as string,
    purpose,
    subscribed: status === 'subscribed',
    atMs: time(rec.timestamp, 'timestamp', true, nowMs) as number,
    origin: origin as string,
    ...(text !== undefined && { text }),
  };
}

/** A CSV record under its header. */
export function checkCsvRecord(
  kind: ImportKind,
  header: string[],
  fields: string[],
  line: number,
  nowMs: number,
): Checked {
  try {
    if (fields.length !== header.length)
      fail(`has ${fields.length} fields where the header has ${header.length}`);
    const rec: Record<string, string> = Object.create(null);
    header.forEach((h, i) => {
      rec[h] = fields[i]!;
    });
    if (kind === 'consent') return { ok: true, row: consentOf(rec, line, nowMs) };
    const ids = identifiers(rec);
    const traits: Record<string, unknown> = {};
    for (const h of header) {
      if (h === 'userId' || h === 'email' || h === 'timestamp') continue;
      const v = rec[h]!;
      if (v === '') continue; // an empty cell leaves the trait as it is
      if (v.length > LIMITS.traitValueChars) fail(`${shown(h)}: over ${LIMITS.traitValueChars} characters`);
      traits[h] = v;
    }
    const atMs = time(rec.timestamp, 'timestamp', false, nowMs);
    return { ok: true, row: { kind: 'traits', line, ...ids, ...(atMs !== undefined && { atMs }), traits } };
  } catch (err) {
    if (err instanceof RowError) return { ok: false, line, reason: err.message };
    throw err;
  }
}

/** A JSON line: `{userId?, email?, timestamp?, traits}` or a consent decision's fields. */
export function checkJsonRecord(kind: ImportKind, value: unknown, line: number, nowMs: number): Checked {
  try {
    if (!value || typeof value !== 'object' || Array.isArray(value)) fail('a JSON object');
    const rec = value as Record<string, unknown>;
    // the ingest edge's structural bounds (depth, key count), with `__proto__`, `constructor`
    // and `prototype` keys refused anywhere in the row (the edge drops `__proto__` ones)
    const shape = shapeProblem(rec, { refuseKeys: UNSAFE_KEYS });
    if (shape) fail(`${shape.path ? shown(shape.path) : 'the row'}: ${shape.message}`);
    const allowed = kind === 'consent' ? CONSENT_COLUMNS : [...ID_COLUMNS, 'timestamp', 'traits'];
    for (const k of Object.keys(rec)) if (!allowed.includes(k)) fail(`unknown field ${shown(k)}`);
    if (kind === 'consent') return { ok: true, row: consentOf(rec, line, nowMs) };
    const ids = identifiers(rec);
    const t = rec.traits;
    if (!t || typeof t !== 'object' || Array.isArray(t)) fail('traits: an object');
    const traits = checkTraits(t as Record<string, unknown>);
    const atMs = time(rec.timestamp, 'timestamp', false, nowMs);
    return { ok: true, row: { kind: 'traits', line, ...ids, ...(atMs !== undefined && { atMs }), traits } };
  } catch (err) {
    if (err instanceof RowError) return { ok: false, line, reason: err.message };
    throw err;
  }
}
