// The forms and landing-page editors' model, without the UI: a definition ↔ the editor's
// state (every value a string or boolean), the state → the API's body (only what applies
// to each field's type or block), and where a server 400 belongs: the message names a path
// (`fields[1].pattern: …`, `variants[0].blocks[2].url: …`), mapped to the control that has
// that key. Plain JS served to the browser as is; form-model.test.ts runs it against the
// server's own checks.

export const FIELD_TYPES = ['text', 'email', 'tel', 'number', 'checkbox', 'select', 'hidden'];

/** `fields[1].pattern: not valid` → {path: 'fields[1].pattern', message}; else {message}. */
export function parseApiError(err) {
  const m = /^([A-Za-z_][\w.[\]]*): (.+)$/s.exec(err?.message ?? '');
  if (!(err?.status === 400 && m)) return null;
  // shape errors name `fields.0.name`, the later checks `fields[0].name`: one spelling
  return { path: m[1].replace(/\.(\d+)(?=\.|\[|$)/g, '[$1]'), message: m[2] };
}

/** The control an error path belongs to: the longest known key that is the path or a prefix of it. */
export function errorTarget(path, keys) {
  let best = null;
  for (const k of keys)
    if (
      (path === k || path.startsWith(`${k}.`) || path.startsWith(`${k}[`)) &&
      (!best || k.length > best.length)
    )
      best = k;
  return best;
}

/** A list's item moved by `d` (-1 up, +1 down), or removed with d = 0. */
export function moved(list, i, d) {
  const next = [...list];
  if (d === 0) next.splice(i, 1);
  else if (i + d >= 0 && i + d < list.length) [next[i], next[i + d]] = [next[i + d], next[i]];
  return next;
}

export const blankField = (i) => ({
  name: `field${i + 1}`,
  label: '',
  type: 'text',
  required: false,
  trait: '',
});
export const blankConsent = (i) => ({
  name: `consent${i + 1}`,
  purpose: 'marketing',
  channel: 'email',
  text: '',
  required: false,
});
const str = (v) => (v === undefined || v === null ? '' : String(v));

/** A definition → the editor's state (every value a string or boolean). */
export function formState(def) {
  if (!def)
    return {
      name: '',
      fields: [{ name: 'email', label: 'Email', type: 'email', required: true, trait: '' }],
      consents: [],
      successKind: 'message',
      message: 'Thank you!',
      redirect: '',
    };
  return {
    name: def.name,
    fields: def.fields.map((f) => ({
      ...f,
      required: !!f.required,
      trait: str(f.trait),
      maxLength: str(f.maxLength),
      pattern: str(f.pattern),
      options: (f.options ?? []).join('\n'),
      min: str(f.min),
      max: str(f.max),
      value: str(f.value),
    })),
    consents: (def.consents ?? []).map((c) => ({ ...c, required: !!c.required })),
    successKind: 'redirect' in def.success ? 'redirect' : 'message',
    message: def.success.message ?? '',
    redirect: def.success.redirect ?? '',
  };
}

/** The editor's state → the API's body: only what applies to each field's type. */
export function formBody(s) {
  const num = (v) => (v.trim() === '' ? undefined : Number(v));
  const fields = s.fields.map((f) => {
    const out = { name: f.name.trim(), label: f.label, type: f.type };
    if (f.required) out.required = true;
    if (str(f.trait).trim()) out.trait = f.trait.trim();
    if (['text', 'email', 'tel', 'hidden'].includes(f.type) && str(f.maxLength).trim())
      out.maxLength = num(f.maxLength);
    if (['text', 'tel', 'hidden'].includes(f.type) && str(f.pattern)) out.pattern = f.pattern;
    if (f.type === 'select')
      out.options = str(f.options)
        .split('\n')
        .map((o) => o.trim())
        .filter(Boolean);
    if (f.type === 'number') {
      if (str(f.min).trim()) out.min = num(f.min);
      if (str(f.max).trim()) out.max = num(f.max);
    }
    if (f.type === 'hidden' && str(f.value)) out.value = f.value;
    return out;
  });
  const body = {
    name: s.name.trim(),
    fields,
    success: s.successKind === 'redirect' ? { redirect: s.redirect.trim() } : { message: s.message },
  };
  if (s.consents.length)
    body.consents = s.consents.map((c) => ({
      name: c.name.trim(),
      purpose: c.purpose.trim(),
      channel: c.channel.trim(),
      text: c.text,
      ...(c.required ? { required: true } : {}),
    }));
  return body;
}

const FIELD_KEYS = [
  'name',
  'label',
  'type',
  'required',
  'trait',
  'maxLength',
  'pattern',
  'options',
  'min',
  'max',
  'value',
];
const CONSENT_KEYS = ['name', 'purpose', 'channel', 'text', 'required'];
export const formKeys = (s) => [
  'name',
  'fields',
  'consents',
  'success',
  'success.message',
  'success.redirect',
  ...s.fields.flatMap((_, i) => [`fields[${i}]`, ...FIELD_KEYS.map((k) => `fields[${i}].${k}`)]),
  ...s.consents.flatMap((_, i) => [`consents[${i}]`, ...CONSENT_KEYS.map((k) => `consents[${i}].${k}`)]),
];

// ---- landing pages ----

export const blank = {
  heading: () => ({ type: 'heading', text: '', level: '' }),
  text: () => ({ type: 'text', text: '' }),
  image: () => ({ type: 'image', url: '', alt: '' }),
  form: () => ({ type: 'form', formId: '' }),
  button: () => ({ type: 'button', label: '', url: '' }),
};

export const copyBlocks = (bs) => bs.map((b) => ({ ...b }));

const BLOCK_KEYS = ['text', 'level', 'url', 'alt', 'width', 'height', 'formId', 'label'];

/** A definition → the editor's state; `ab` when it has variants. */
export function pageState(def) {
  const blocks = (bs) => bs.map((b) => ({ ...b, level: b.level === undefined ? '' : String(b.level) }));
  if (!def)
    return {
      name: '',
      slug: '',
      title: '',
      description: '',
      ab: false,
      blocks: [{ type: 'heading', text: '', level: '' }, blank.form()],
      variants: [],
    };
  return {
    name: def.name,
    slug: def.slug,
    title: def.title ?? '',
    description: def.description ?? '',
    ab: !!def.variants,
    blocks: blocks(def.blocks ?? def.variants?.[0]?.blocks ?? []),
    variants: (def.variants ?? []).map((v) => ({
      id: v.id,
      weight: String(v.weight),
      blocks: blocks(v.blocks),
    })),
  };
}

export function pageBody(s) {
  const blocks = (bs) =>
    bs.map((b) => {
      if (b.type === 'heading')
        return { type: 'heading', text: b.text, ...(b.level ? { level: Number(b.level) } : {}) };
      if (b.type === 'text') return { type: 'text', text: b.text };
      if (b.type === 'image')
        return {
          type: 'image',
          url: b.url.trim(),
          alt: b.alt,
          ...(String(b.width ?? '').trim() ? { width: Number(b.width) } : {}),
          ...(String(b.height ?? '').trim() ? { height: Number(b.height) } : {}),
        };
      if (b.type === 'form') return { type: 'form', formId: b.formId };
      return { type: 'button', label: b.label, url: b.url.trim() };
    });
  return {
    name: s.name.trim(),
    slug: s.slug.trim(),
    ...(s.title.trim() ? { title: s.title.trim() } : {}),
    ...(s.description.trim() ? { description: s.description.trim() } : {}),
    ...(s.ab
      ? {
          variants: s.variants.map((v) => ({
            id: v.id.trim(),
            weight: Number(v.weight),
            blocks: blocks(v.blocks),
          })),
        }
      : { blocks: blocks(s.blocks) }),
  };
}

const blockKeys = (at, bs) => [
  at,
  ...bs.flatMap((_, i) => [`${at}[${i}]`, ...BLOCK_KEYS.map((k) => `${at}[${i}].${k}`)]),
];
export const pageKeys = (s) => [
  'name',
  'slug',
  'title',
  'description',
  ...(s.ab
    ? [
        'variants',
        ...s.variants.flatMap((v, i) => [
          `variants[${i}]`,
          `variants[${i}].id`,
          `variants[${i}].weight`,
          ...blockKeys(`variants[${i}].blocks`, v.blocks),
        ]),
      ]
    : blockKeys('blocks', s.blocks)),
];

/** The first limit of the page schema a block breaks, as [its key, why], or null. */
export function blockProblem(b) {
  const len = (v, min, max) => {
    const n = String(v ?? '').length;
    if (n >= min && n <= max) return null;
    return n === 0 ? 'required' : `${min} to ${max} characters`;
  };
  const size = (v) => {
    if (v === undefined || String(v).trim() === '') return null;
    const n = Number(v);
    return Number.isInteger(n) && n >= 1 && n <= 4000 ? null : 'a whole number from 1 to 4000';
  };
  const checks = {
    heading: [['text', len(b.text, 1, 300)]],
    text: [['text', len(b.text, 1, 10_000)]],
    image: [
      ['url', len(b.url, 1, 2048)],
      ['alt', len(b.alt, 0, 300)],
      ['width', size(b.width)],
      ['height', size(b.height)],
    ],
    form: [['formId', b.formId ? null : 'choose a form']],
    button: [
      ['label', len(b.label, 1, 100)],
      ['url', len(b.url, 1, 2048)],
    ],
  }[b.type];
  return checks?.find(([, why]) => why) ?? null;
}

/**
 * The server names only the block when a block fits none of the block shapes ("Expected
 * union value"): the control and reason are found here, so the message is shown there.
 */
export function refinePageError(p, s) {
  const m = /^(?:variants\[(\d+)\]\.)?blocks\[(\d+)\]$/.exec(p.path);
  if (!m) return p;
  const blocks = m[1] === undefined ? s.blocks : s.variants[Number(m[1])]?.blocks;
  const hit = blocks?.[Number(m[2])] && blockProblem(blocks[Number(m[2])]);
  return hit ? { path: `${p.path}.${hit[0]}`, message: hit[1] } : p;
}
