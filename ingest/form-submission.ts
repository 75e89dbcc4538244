// A form submission checked against its definition: every posted value against its field
// (type, required, length, pattern, options), nothing that is not a field of the form, no
// markup or control characters. Pure: the posted values in, the traits, ticked consents and
// the errors per field out.
import { DEFAULT_MAX_LENGTH, type FormDefinition } from '../schemas/form.ts';
import { safeTest } from '../schemas/safe-regex.ts';

/** Field names the form itself posts (rendered by ingest/forms.ts). */
export const FORM_META = {
  token: '_token',
  /** The honeypot: hidden from people; a bot that fills it is answered as if it succeeded. */
  honeypot: '_website',
  page: '_page',
  referrer: '_referrer',
  anonymousId: 'anonymousId',
  /** Set by a landing page that embeds the form (ingest/pages.ts): conversions attribute to it. */
  pageId: '_pageId',
  variant: '_variant',
} as const;
const META_NAMES = new Set<string>(Object.values(FORM_META));

/** Posted values: one per name (a name posted twice is an error of its own). */
export type Posted = Map<string, string | number | boolean>;

export const MAX_POSTED_FIELDS = 100;
const MAX_URL_LENGTH = 2048;

export interface CheckedSubmission {
  traits: Record<string, string | number | boolean>;
  consents: Array<{ channel: string; purpose: string; text: string }>;
  /** field name → what is wrong with it; empty when the submission is valid. */
  errors: Record<string, string>;
  token?: string;
  honeypot: boolean;
  page?: string;
  referrer?: string;
  anonymousId?: string;
  pageId?: string;
  variant?: string;
}

// an HTML tag or comment opener: nothing a person types into a lead form needs it, and a
// value that has it is refused rather than stored for a template to render later
const MARKUP = /<[A-Za-z!/?]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/;
const EMAIL = /^[^\s@<>()",;]+@[^\s@<>()",;]+\.[^\s@<>()",;]+$/;
const TEL = /^\+?[0-9 ()./-]{4,32}$/;
const ANONYMOUS_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const PAGE_REF = /^[A-Za-z0-9_-]{1,64}$/;
const TRUE = new Set(['on', 'true', '1', 'yes']);
const FALSE = new Set(['', 'off', 'false', '0', 'no']);

/** A name as an error key: bounded, so a hostile name cannot make the answer large. */
const label = (name: string) => (name.length > 64 ? `${name.slice(0, 64)}…` : name);

function textError(v: string, multiline: boolean): string | undefined {
  if (CONTROL.test(v) || (!multiline && /[\r\n]/.test(v))) return 'control characters are not allowed';
  if (MARKUP.test(v)) return 'markup (<…>) is not allowed';
  return undefined;
}

function checkbox(v: string | number | boolean): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  return TRUE.has(s) ? true : FALSE.has(s) ? false : undefined;
}

function httpUrl(v: string): boolean {
  if (v.length > MAX_URL_LENGTH) return false;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

export function checkSubmission(form: FormDefinition, posted: Posted): CheckedSubmission {
  // no prototype: a field named `__proto__` or `constructor` is an error like any other
  const out: CheckedSubmission = {
    traits: Object.create(null),
    consents: [],
    errors: Object.create(null),
    honeypot: false,
  };
  const err = (name: string, why: string) => {
    out.errors[label(name)] ??= why;
  };
  const known = new Set<string>([
    ...form.fields.map((f) => f.name),
    ...(form.consents ?? []).map((c) => c.name),
  ]);
  for (const name of posted.keys())
    if (!known.has(name) && !META_NAMES.has(name)) err(name, 'not a field of this form');

  const meta = (name: string): string | undefined => {
    const v = posted.get(name);
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') {
      err(name, 'must be a string');
      return undefined;
    }
    return v;
  };
  const hp = posted.get(FORM_META.honeypot);
  out.honeypot = hp !== undefined && hp !== '' && hp !== false;
  out.token = meta(FORM_META.token);
  out.page = meta(FORM_META.page);
  if (out.page !== undefined && !httpUrl(out.page)) err(FORM_META.page, 'not an http(s) URL');
  out.referrer = meta(FORM_META.referrer);
  if (out.referrer !== undefined && !httpUrl(out.referrer)) err(FORM_META.referrer, 'not an http(s) URL');
  out.anonymousId = meta(FORM_META.anonymousId);
  if (out.anonymousId !== undefined && !ANONYMOUS_ID.test(out.anonymousId))
    err(FORM_META.anonymousId, 'letters, digits and _.:- only, at most 128');
  out.pageId = meta(FORM_META.pageId);
  if (out.pageId !== undefined && !PAGE_REF.test(out.pageId))
    err(FORM_META.pageId, 'letters, digits, _ and - only, at most 64');
  out.variant = meta(FORM_META.variant);
  if (out.variant !== undefined && (out.pageId === undefined || !PAGE_REF.test(out.variant)))
    err(FORM_META.variant, 'letters, digits, _ and - only, at most 64, with _pageId');

  for (const f of form.fields) {
    const raw = posted.get(f.name);
    const trait = f.trait ?? f.name;
    if (f.type === 'checkbox') {
      const on = raw === undefined ? false : checkbox(raw);
      if (on === undefined) err(f.name, 'must be checked or not (on, or absent)');
      else if (f.required && !on) err(f.name, 'required: tick it');
      else out.traits[trait] = on;
      continue;
    }
    if (raw === undefined || raw === '') {
      if (f.required) err(f.name, 'required');
      continue;
    }
    if (f.type === 'number') {
      const n =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(raw)
            ? Number(raw)
            : Number.NaN;
      if (!Number.isFinite(n)) err(f.name, 'must be a number');
      else if (f.min !== undefined && n < f.min) err(f.name, `must be at least ${f.min}`);
      else if (f.max !== undefined && n > f.max) err(f.name, `must be at most ${f.max}`);
      else out.traits[trait] = n;
      continue;
    }
    if (typeof raw !== 'string') {
      err(f.name, 'must be a string');
      continue;
    }
    const v = f.type === 'email' || f.type === 'tel' ? raw.trim() : raw;
    const max = f.maxLength ?? (f.type === 'email' ? 320 : DEFAULT_MAX_LENGTH);
    if (v.length > max) {
      err(f.name, `at most ${max} characters`);
      continue;
    }
    const why = textError(v, f.type === 'text');
    if (why) {
      err(f.name, why);
      continue;
    }
    if (f.type === 'email' && !EMAIL.test(v)) err(f.name, 'not an email address');
    else if (f.type === 'tel' && !f.pattern && !TEL.test(v)) err(f.name, 'not a phone number');
    else if (f.type === 'select' && !f.options!.includes(v)) err(f.name, 'not one of the choices');
    else if (f.pattern && !safeTest(`^(?:${f.pattern})$`, v))
      err(f.name, 'does not match the expected format');
    else out.traits[trait] = v;
  }

  for (const c of form.consents ?? []) {
    const raw = posted.get(c.name);
    const on = raw === undefined ? false : checkbox(raw);
    if (on === undefined) err(c.name, 'must be checked or not (on, or absent)');
    else if (c.required && !on) err(c.name, 'required: tick it');
    // a box left unticked records nothing: it neither grants nor withdraws consent
    else if (on) out.consents.push({ channel: c.channel, purpose: c.purpose, text: c.text });
  }
  return out;
}

/** UTM parameters of a page URL (`utm_source` → `source`, …). */
export function utmOf(page: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!page) return out;
  let url: URL;
  try {
    url = new URL(page);
  } catch {
    return out;
  }
  for (const k of ['source', 'medium', 'campaign', 'term', 'content']) {
    const v = url.searchParams.get(`utm_${k}`);
    if (v && v.length <= 200 && !textError(v, false)) out[k] = v;
  }
  return out;
}

/** The analytics.js anonymousId from its cookie (`ajs_anonymous_id`, stored JSON-quoted). */
export function cookieAnonymousId(cookie: string | undefined): string | undefined {
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== 'ajs_anonymous_id') continue;
    let v = part.slice(eq + 1).trim();
    try {
      v = decodeURIComponent(v);
    } catch {
      return undefined;
    }
    v = v.replace(/^"(.*)"$/, '$1');
    return ANONYMOUS_ID.test(v) ? v : undefined;
  }
  return undefined;
}
