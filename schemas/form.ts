// Forms: lead capture served by the ingest host. A definition lists fields (each mapped to a
// trait, with a type and validation), consent checkboxes bound to a purpose and channel with
// the exact text shown, and what a visitor sees after submitting (a message or a redirect).
// The query service validates and stores definitions (query/routes/forms.ts), each edit a new
// version; ingest loads them from the definition store and takes submissions (ingest/forms.ts).
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { checkShape, DefinitionInputError } from './definition-input.ts';
import { hasNestedQuantifier, patternError } from './safe-regex.ts';

export const FIELD_TYPES = ['text', 'email', 'tel', 'number', 'checkbox', 'select', 'hidden'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

/**
 * A field's name as posted: a letter first. Names starting with `_` are the form's own
 * (`_token`, `_website`, `_page`, `_referrer`), and `anonymousId` links the browser.
 */
const FieldName = Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' });
export const RESERVED_FIELD_NAMES = new Set(['anonymousId']);
/** A trait a field is written to (top level; `email` also identifies the person). */
const TraitName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' });
const Scope = Type.String({ pattern: '^[a-z0-9_-]{1,40}$' });

/** Longest value a text-like field takes when its definition gives no maxLength. */
export const DEFAULT_MAX_LENGTH = 1000;
export const MAX_FIELD_LENGTH = 10_000;

const Field = Type.Object(
  {
    name: FieldName,
    label: Type.String({ minLength: 1, maxLength: 200 }),
    type: Type.Union(FIELD_TYPES.map((t) => Type.Literal(t))),
    required: Type.Optional(Type.Boolean()),
    /** Text-like fields; default DEFAULT_MAX_LENGTH. */
    maxLength: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_FIELD_LENGTH })),
    /** A regular expression the whole value must match (text, tel, hidden). */
    pattern: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    /** The choices of a select. */
    options: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 200 }),
    ),
    min: Type.Optional(Type.Number()),
    max: Type.Optional(Type.Number()),
    /** The value a hidden field is rendered with (a posted value replaces it). */
    value: Type.Optional(Type.String({ maxLength: 1000 })),
    /** The trait it sets; default the field's name. */
    trait: Type.Optional(TraitName),
  },
  { additionalProperties: false },
);

/** A checkbox that, when ticked, records consent for a purpose on a channel, with its text. */
const Consent = Type.Object(
  {
    name: FieldName,
    purpose: Scope,
    channel: Scope,
    /** The exact text shown beside the box; kept with the consent record. */
    text: Type.String({ minLength: 1, maxLength: 2000 }),
    required: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const Success = Type.Union([
  Type.Object({ message: Type.String({ minLength: 1, maxLength: 2000 }) }, { additionalProperties: false }),
  Type.Object({ redirect: Type.String({ minLength: 1, maxLength: 2048 }) }, { additionalProperties: false }),
]);

export const FormInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    fields: Type.Array(Field, { minItems: 1, maxItems: 50 }),
    consents: Type.Optional(Type.Array(Consent, { maxItems: 10 })),
    success: Success,
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused')])),
  },
  { additionalProperties: false },
);
export type FormInput = Static<typeof FormInput>;
export type FormField = Static<typeof Field>;
export type FormConsent = Static<typeof Consent>;
export type FormStatus = 'active' | 'paused';

export interface FormDefinition extends FormInput {
  id: string;
  workspaceId: string;
  version: number;
  status: FormStatus;
  createdAt: string;
  updatedAt: string;
}

const formInputCheck = TypeCompiler.Compile(FormInput);
const bad = (m: string) => new DefinitionInputError(m);

/** Validates a definition; throws DefinitionInputError naming the field. */
export function checkFormInput(body: unknown): FormInput {
  checkShape(formInputCheck, body, {
    success: 'either {message} or {redirect: an http(s) URL}',
  });
  const f = body as FormInput;
  const names = new Set<string>();
  const taken = (name: string, at: string) => {
    if (RESERVED_FIELD_NAMES.has(name)) throw bad(`${at}: "${name}" is reserved`);
    if (names.has(name)) throw bad(`${at}: "${name}" is used twice`);
    names.add(name);
  };
  const traits = new Set<string>();
  f.fields.forEach((field, i) => {
    const at = `fields[${i}]`;
    taken(field.name, `${at}.name`);
    const trait = field.trait ?? field.name;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(trait))
      throw bad(`${at}.trait: give a trait name (the field's name is not one)`);
    if (trait === '__proto__' || trait === 'constructor' || trait === 'prototype')
      throw bad(`${at}.trait: "${trait}" is not a trait name`);
    if (traits.has(trait)) throw bad(`${at}.trait: "${trait}" is set by another field`);
    traits.add(trait);
    if (field.options && field.type !== 'select') throw bad(`${at}.options: only for a select`);
    if (field.type === 'select' && !field.options) throw bad(`${at}.options: a select needs its options`);
    if ((field.min !== undefined || field.max !== undefined) && field.type !== 'number')
      throw bad(`${at}.min: only for a number`);
    if (field.value !== undefined && field.type !== 'hidden')
      throw bad(`${at}.value: only for a hidden field`);
    if (field.pattern !== undefined) {
      if (!['text', 'tel', 'hidden'].includes(field.type))
        throw bad(`${at}.pattern: only for text, tel and hidden fields`);
      // a nested quantifier (`(a+)+`) can take exponential time on a visitor's input
      if (hasNestedQuantifier(field.pattern))
        throw bad(`${at}.pattern: a repeated group with a quantifier inside is not allowed`);
      // run on RE2 at submission (schemas/safe-regex.ts): JavaScript's syntax minus backreferences and lookaround
      const why = patternError(`^(?:${field.pattern})$`);
      if (why) throw bad(`${at}.pattern: ${why}`);
    }
    if (field.maxLength !== undefined && !['text', 'email', 'tel', 'hidden'].includes(field.type))
      throw bad(`${at}.maxLength: only for text, email, tel and hidden fields`);
  });
  (f.consents ?? []).forEach((c, i) => {
    taken(c.name, `consents[${i}].name`);
  });
  if ('redirect' in f.success) {
    const why = redirectError(f.success.redirect);
    if (why) throw bad(`success.redirect: ${why}`);
  }
  return f;
}

/**
 * A redirect target is fixed by the definition (never taken from a submission, so the
 * endpoint cannot be used as an open redirect); it must be an absolute http(s) URL.
 */
export function redirectError(target: string): string | undefined {
  // it becomes a Location header as written: nothing a URL parser would quietly drop
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
  if (/[\s\u0000-\u001f\u007f]/.test(target)) return 'no spaces or control characters';
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return 'not an absolute URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be http or https';
  if (url.username || url.password) return 'credentials in the URL are not allowed';
  return undefined;
}

export const FORM_TRANSITIONS: Record<'pause' | 'activate', FormStatus> = {
  pause: 'paused',
  activate: 'active',
};

/**
 * Consent ticked on a submission, waiting for the submission's anonymousId to resolve to a
 * profile (the processor creates it from the identify). Ingest queues it in Redis
 * (globalKeys.formConsentDue); the query service writes it as consent (query/form-consent.ts).
 */
export interface PendingFormConsent {
  /** The submission (its events' messageIds derive from it). */
  id: string;
  workspaceId: string;
  anonymousId: string;
  formId: string;
  formVersion: number;
  consents: Array<{ channel: string; purpose: string; text: string }>;
  /** When it was submitted (epoch ms). */
  at: number;
  ip?: string;
  userAgent?: string;
}

/** The consent record's source for a form's version: `form:<id>@<version>`. */
export const formConsentSource = (formId: string, version: number) => `form:${formId}@${version}`;
