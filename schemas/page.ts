// Landing pages: a page built from a few blocks (heading, text, image, an embedded form, a
// button), published by the ingest host at `/p/{workspace}/{slug}`. A page has either one
// set of blocks or A/B variants, each with its own blocks and a weight; a visitor is shown
// one variant, the same on every visit (a hash of their anonymousId and the page).
// The query service validates and stores definitions (query/routes/pages.ts), each edit a
// new version; ingest loads them from the definition store and serves them (ingest/pages.ts).
import { createHash } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { checkShape, DefinitionInputError } from './definition-input.ts';

/** A slug as it appears in the URL: lower-case letters, digits and inner hyphens. */
export const SLUG_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$';
export const SLUG = new RegExp(SLUG_PATTERN);
const VARIANT_ID_PATTERN = '^[A-Za-z0-9_-]{1,32}$';
export const VARIANT_ID = new RegExp(VARIANT_ID_PATTERN);
/** The variant id of a page without variants (its `blocks`). */
export const DEFAULT_VARIANT = 'default';

export const MAX_BLOCKS = 50;
export const MAX_VARIANTS = 5;
/** The whole definition as JSON; a larger one is a 413. */
export const MAX_PAGE_BYTES = 256 * 1024;
const MAX_URL = 2048;

const Url = Type.String({ minLength: 1, maxLength: MAX_URL });

const Heading = Type.Object(
  {
    type: Type.Literal('heading'),
    text: Type.String({ minLength: 1, maxLength: 300 }),
    /** h1–h3; default 1 for the first heading of a page, else 2. */
    level: Type.Optional(Type.Union([Type.Literal(1), Type.Literal(2), Type.Literal(3)])),
  },
  { additionalProperties: false },
);
/** Plain text: a blank line starts a paragraph, a newline breaks a line. No markup. */
const Text = Type.Object(
  { type: Type.Literal('text'), text: Type.String({ minLength: 1, maxLength: 10_000 }) },
  { additionalProperties: false },
);
const Image = Type.Object(
  {
    type: Type.Literal('image'),
    /** An absolute http(s) URL; its origin is allowed in the page's CSP (img-src). */
    url: Url,
    alt: Type.String({ maxLength: 300 }),
    width: Type.Optional(Type.Integer({ minimum: 1, maximum: 4000 })),
    height: Type.Optional(Type.Integer({ minimum: 1, maximum: 4000 })),
  },
  { additionalProperties: false },
);
const FormBlock = Type.Object(
  { type: Type.Literal('form'), formId: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) },
  { additionalProperties: false },
);
const Button = Type.Object(
  { type: Type.Literal('button'), label: Type.String({ minLength: 1, maxLength: 100 }), url: Url },
  { additionalProperties: false },
);
const Block = Type.Union([Heading, Text, Image, FormBlock, Button]);
const Blocks = Type.Array(Block, { minItems: 1, maxItems: MAX_BLOCKS });

const Variant = Type.Object(
  {
    id: Type.String({ pattern: VARIANT_ID_PATTERN }),
    /** Share of new visitors, relative to the others' (0 shows it to nobody new). */
    weight: Type.Integer({ minimum: 0, maximum: 10_000 }),
    blocks: Blocks,
  },
  { additionalProperties: false },
);

export const PAGE_STATUSES = ['draft', 'published', 'archived'] as const;
export type PageStatus = (typeof PAGE_STATUSES)[number];

export const PageInput = Type.Object(
  {
    /** The console's name for the page. */
    name: Type.String({ minLength: 1, maxLength: 200 }),
    slug: Type.String({ minLength: 1, maxLength: 80 }),
    /** The HTML title and the tracked page call's name; default `name`. */
    title: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    /** A page without variants: these blocks. */
    blocks: Type.Optional(Blocks),
    /** A/B variants: each with its own blocks and a weight (instead of `blocks`). */
    variants: Type.Optional(Type.Array(Variant, { minItems: 2, maxItems: MAX_VARIANTS })),
    status: Type.Optional(Type.Union(PAGE_STATUSES.map((s) => Type.Literal(s)))),
  },
  { additionalProperties: false },
);
export type PageInput = Static<typeof PageInput>;
export type PageBlock = Static<typeof Block>;
export type PageVariant = Static<typeof Variant>;

export interface PageDefinition extends PageInput {
  id: string;
  workspaceId: string;
  version: number;
  status: PageStatus;
  createdAt: string;
  updatedAt: string;
}

const pageInputCheck = TypeCompiler.Compile(PageInput);
const bad = (m: string) => new DefinitionInputError(m);

/** The reason an image or button URL is refused, or undefined when it is an absolute http(s) URL. */
export function linkError(v: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
  if (/[\s\u0000-\u001f\u007f]/.test(v)) return 'no spaces or control characters';
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return 'not an absolute URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return `must be http or https (not ${JSON.stringify(url.protocol.slice(0, 20))})`;
  if (url.username || url.password) return 'credentials in the URL are not allowed';
  return undefined;
}

/**
 * Validates a definition; throws DefinitionInputError naming the field. `formExists`
 * tells whether a form id belongs to the workspace (checked for every form block).
 */
export async function checkPageInput(
  body: unknown,
  formExists: (formId: string) => Promise<boolean>,
): Promise<PageInput> {
  checkShape(pageInputCheck, body, {
    slug: `lower-case letters, digits and hyphens (${SLUG_PATTERN})`,
  });
  const p = body as PageInput;
  if (!SLUG.test(p.slug))
    throw bad('slug: lower-case letters, digits and inner hyphens, at most 80 (e.g. "spring-offer")');
  if (p.blocks && p.variants) throw bad('variants: give either blocks or variants, not both');
  if (!p.blocks && !p.variants) throw bad('blocks: required (or variants for an A/B test)');
  const sets: Array<{ at: string; blocks: PageBlock[] }> = p.blocks
    ? [{ at: 'blocks', blocks: p.blocks }]
    : p.variants!.map((v, i) => ({ at: `variants[${i}].blocks`, blocks: v.blocks }));
  if (p.variants) {
    const ids = new Set<string>();
    p.variants.forEach((v, i) => {
      if (ids.has(v.id)) throw bad(`variants[${i}].id: "${v.id}" is used twice`);
      ids.add(v.id);
    });
    if (p.variants.every((v) => v.weight === 0))
      throw bad('variants: at least one variant needs a weight above 0');
  }
  const forms = new Set<string>();
  for (const { at, blocks } of sets)
    for (const [i, b] of blocks.entries()) {
      if (b.type === 'image' || b.type === 'button') {
        const why = linkError(b.url);
        if (why) throw bad(`${at}[${i}].url: ${why}`);
      }
      if (b.type === 'form') {
        if (!forms.has(b.formId) && !(await formExists(b.formId)))
          throw bad(`${at}[${i}].formId: no form ${b.formId} in this workspace`);
        forms.add(b.formId);
      }
    }
  return p;
}

export const PAGE_TRANSITIONS: Record<'publish' | 'unpublish' | 'archive', PageStatus> = {
  publish: 'published',
  unpublish: 'draft',
  archive: 'archived',
};

/** The variants of a page as served: its `variants`, or its `blocks` as the one variant `default`. */
export function pageVariants(p: PageInput): PageVariant[] {
  return p.variants ?? [{ id: DEFAULT_VARIANT, weight: 1, blocks: p.blocks ?? [] }];
}

/**
 * The variant a visitor sees: a hash of their anonymousId and the page id, placed on the
 * variants' weights in their order. The same visitor gets the same variant on every visit
 * and every ingest process, as long as the weights stay the same.
 */
export function chooseVariant(
  variants: readonly PageVariant[],
  anonymousId: string,
  pageId: string,
): PageVariant {
  const total = variants.reduce((s, v) => s + v.weight, 0);
  if (variants.length === 1 || total <= 0) return variants[0]!;
  const h = createHash('sha256').update(`${pageId}\u0000${anonymousId}`).digest();
  // 48 bits of the hash, scaled to the total weight (uniform for totals far below 2^48)
  const point = (h.readUIntBE(0, 6) / 2 ** 48) * total;
  let acc = 0;
  for (const v of variants) {
    acc += v.weight;
    if (point < acc) return v;
  }
  return variants.findLast((v) => v.weight > 0)!;
}

/** The form ids a variant embeds, in order, once each. */
export function formIdsOf(blocks: readonly PageBlock[]): string[] {
  return [...new Set(blocks.flatMap((b) => (b.type === 'form' ? [b.formId] : [])))];
}
