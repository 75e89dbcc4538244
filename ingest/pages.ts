// Landing pages on the ingest host: `GET /p/{workspace}/{slug}` is a published page as
// plain HTML (no script; a strict CSP; every value escaped), its form blocks the same
// server-rendered forms as the form page, posting to the form's submit endpoint (they work
// without JavaScript) with the page and variant in hidden fields, so a submission is
// attributed to them (`Form Submitted` properties pageId, variant).
//
// Variants: a visitor is shown one variant, chosen from a hash of their anonymousId (the
// analytics.js cookie `ajs_anonymous_id`; without it, a new one set as that cookie) and the
// page on the variants' weights: the same one on every visit.
//
// Views: each view is produced as a Segment `page` call (properties url, path, referrer,
// title, pageId, pageVersion, variant, formIds) to the events topic, acknowledged before
// the answer, like any tracked call: the history, profiles and segments see it.
//
// Abuse: the route is public and the anonymousId comes from a cookie the caller chooses, so
// views go through the same hot-key lane as the /v1 calls (one anonymousId's flood goes to
// the overflow topic), and views are recorded per client address (IPv4, or the /64 of an
// IPv6 one) up to a rate: past it the page is still served (a visitor must see it) but the
// view is not recorded, counted and logged (`page_view_rate_limited`). Not a 429: a real
// visitor behind a busy NAT or proxy would get an error page for a limit that protects the
// analytics, not the page.
//
// No Redis per view: definitions are held in memory (reloaded when the definition store's
// revision moves, polled in the background), and each (workspace, slug, variant) is
// rendered once into a template whose per-view parts (form tokens, the visitor's
// anonymousId, the page URL, the referrer) are filled in per view. The rendered pages
// are dropped when a reload changed any page or form.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type Context, Hono } from 'hono';
import { clientKey, remoteAddress } from '../runtime/auth-failures.ts';
import { type DefinitionStore, watchDefinitions } from '../runtime/definitions.ts';
import { withTimeout } from '../runtime/http.ts';
import type { Producer } from '../runtime/kafka/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { FormDefinition } from '../schemas/form.ts';
import {
  chooseVariant,
  formIdsOf,
  type PageBlock,
  type PageDefinition,
  type PageVariant,
  pageVariants,
  SLUG,
} from '../schemas/page.ts';
import { eventKey } from '../schemas/topics.ts';
import { cookieAnonymousId, FORM_META, utmOf } from './form-submission.ts';
import { signFormToken } from './form-token.ts';
import { esc, renderForm } from './forms.ts';
import { normalizeEvent, type TimeBounds } from './normalize-event.ts';
import { RateLimiter } from './rate-limit.ts';

/** The loaded pages and forms, and a generation that moves when any of them changed. */
export interface PageSource {
  /** The page holding the slug in the workspace, whatever its status. */
  bySlug(ws: string, slug: string): PageDefinition | undefined;
  form(ws: string, id: string): FormDefinition | undefined;
  generation(): number;
  /** Reloads when the definition store moved (one GET when it did not). */
  refresh(): Promise<void>;
}

export interface PageDeps {
  pages: PageSource;
  producer: Producer;
  eventsTopic: string;
  log: Logger;
  now: () => Date;
  /** CDP_FORMS_SECRET: signs the embedded forms' time-to-fill tokens. */
  secret: string;
  produceTimeoutMs: number;
  timeBounds?: TimeBounds;
  /** Bytes of rendered (page, variant) templates kept in memory; default 64 MiB. */
  cacheBytes?: number;
  /**
   * The hot-key lane of the /v1 calls (IngestDeps.hotKeys, the same limiter): a view of an
   * anonymousId over it goes to `overflowTopic`. createIngestApp passes its own.
   */
  hotKeys?: { limiter: RateLimiter; overflowTopic: string };
  /**
   * Views recorded per client address (clientKey: IPv4, or IPv6 /64); over it the page is
   * served and the view not recorded. Default: VIEWS_PER_ADDRESS_PER_MINUTE; false: none.
   */
  addressLimiter?: RateLimiter | false;
}

/** The default per-address limit on recorded views, per ingest process (a burst of as many). */
export const VIEWS_PER_ADDRESS_PER_MINUTE = 600;
/** Views not recorded for the address limit are logged at most this often (with their count). */
const SKIPPED_LOG_MS = 10_000;

const WORKSPACE = /^[A-Za-z0-9_-]{1,64}$/;
/** A page just published is looked up again at most this often on a miss (a flood of 404s is no flood of Redis reads). */
const MISS_REFRESH_MS = 100;
const COOKIE_MAX_AGE_S = 365 * 86_400;

/** A rendered page: fixed HTML between the slots filled per view. */
interface Template {
  parts: string[];
  slots: Slot[];
  /** The CSP: image origins and the embedded forms' redirect origins. */
  csp: string;
  formIds: string[];
  title: string;
  /** Its size in memory, about (UTF-16). */
  bytes: number;
}
type Slot = { kind: 'anon' } | { kind: 'page' } | { kind: 'referrer' } | { kind: 'token'; formId: string };

export function pageRoutes(deps: PageDeps): Hono {
  const app = new Hono();
  const maxBytes = deps.cacheBytes ?? 64 * 1024 * 1024;
  const cache = new Map<string, Template>();
  let cachedBytes = 0;
  let cacheGeneration = -1;
  let lastMissRefresh = 0;
  const addressLimiter =
    deps.addressLimiter === false
      ? undefined
      : (deps.addressLimiter ??
        new RateLimiter(VIEWS_PER_ADDRESS_PER_MINUTE / 60, VIEWS_PER_ADDRESS_PER_MINUTE, undefined, 100_000));
  let skipped = 0;
  let lastSkippedLog = Number.NEGATIVE_INFINITY;
  /** Whether a view from this address is recorded; counts and logs (sparingly) those that are not. */
  const recordable = (address: string, page: PageDefinition): boolean => {
    if (!addressLimiter) return true;
    const key = clientKey(address);
    if (addressLimiter.take(key, 1).ok) return true;
    skipped++;
    const t = Date.now();
    if (t - lastSkippedLog >= SKIPPED_LOG_MS) {
      deps.log.warn(
        { address: key, workspaceId: page.workspaceId, pageId: page.id, skipped },
        'page_view_rate_limited',
      );
      lastSkippedLog = t;
      skipped = 0;
    }
    return false;
  };

  const template = (page: PageDefinition, variant: PageVariant): Template => {
    const gen = deps.pages.generation();
    if (gen !== cacheGeneration) {
      cache.clear();
      cachedBytes = 0;
      cacheGeneration = gen;
    }
    // the definition's own stamp too: a page read just before a reload is not kept as the new one
    const key = `${page.workspaceId}/${page.slug}/${variant.id}/${page.id}@${page.version}@${page.updatedAt}`;
    let t = cache.get(key);
    if (!t) {
      t = renderPage(page, variant, (id) => deps.pages.form(page.workspaceId, id));
      // the oldest rendered first out, until the new one fits
      for (const [k, old] of cache) {
        if (cachedBytes + t.bytes <= maxBytes) break;
        cache.delete(k);
        cachedBytes -= old.bytes;
      }
      cache.set(key, t);
      cachedBytes += t.bytes;
    }
    return t;
  };

  const find = async (ws: string, slug: string): Promise<PageDefinition | undefined> => {
    let page = deps.pages.bySlug(ws, slug);
    if (page?.status !== 'published' && Date.now() - lastMissRefresh >= MISS_REFRESH_MS) {
      // published a moment ago: one revision check before saying no
      lastMissRefresh = Date.now();
      await deps.pages.refresh();
      page = deps.pages.bySlug(ws, slug);
    }
    return page?.status === 'published' ? page : undefined;
  };

  app.get('/p/:ws/:slug', async (c) => {
    const ws = c.req.param('ws');
    const slug = c.req.param('slug');
    // a draft, an archived page and one that never was answer the same
    const page = WORKSPACE.test(ws) && SLUG.test(slug) ? await find(ws, slug) : undefined;
    if (!page) return notFound(c);

    const cookieId = cookieAnonymousId(c.req.header('cookie'));
    const anonymousId = cookieId ?? randomUUID();
    const variant = chooseVariant(pageVariants(page), anonymousId, page.id);
    const t = template(page, variant);
    const nowMs = deps.now().getTime();
    const url = httpUrl(c.req.url) ?? '';
    const referrerHeader = c.req.header('referer');
    const referrer = (referrerHeader && httpUrl(referrerHeader)) || '';
    const body = fill(t, (s) => {
      if (s.kind === 'anon') return anonymousId;
      if (s.kind === 'page') return url;
      if (s.kind === 'referrer') return referrer;
      return signFormToken(deps.secret, page.workspaceId, s.formId, nowMs);
    });

    // a prefetch or HEAD is no view
    const purpose = `${c.req.header('sec-purpose') ?? ''}${c.req.header('purpose') ?? ''}`.toLowerCase();
    if (c.req.method === 'GET' && !purpose.includes('prefetch')) {
      const address = remoteAddress(c);
      if (recordable(address, page))
        await trackView(c, deps, {
          page,
          variant: variant.id,
          t,
          anonymousId,
          url,
          referrer,
          nowMs,
          ip: address === 'unknown' ? undefined : address,
        });
    }

    if (!cookieId) {
      const secure = url.startsWith('https:') || c.req.header('x-forwarded-proto') === 'https';
      // as analytics.js stores it (JSON-quoted), so a script on the same site keeps the id
      c.header(
        'Set-Cookie',
        `ajs_anonymous_id=%22${anonymousId}%22; Path=/; Max-Age=${COOKIE_MAX_AGE_S}; SameSite=Lax${secure ? '; Secure' : ''}`,
      );
    }
    c.header('Cache-Control', 'private, no-store');
    return htmlAnswer(c, 200, body, t.csp);
  });

  return app;
}

async function trackView(
  c: Context,
  deps: PageDeps,
  v: {
    page: PageDefinition;
    variant: string;
    t: Template;
    anonymousId: string;
    url: string;
    referrer: string;
    nowMs: number;
    ip: string | undefined;
  },
): Promise<void> {
  const path = `/p/${v.page.workspaceId}/${v.page.slug}`;
  const search = v.url ? new URL(v.url).search : '';
  const utm = utmOf(v.url || undefined);
  const userAgent = c.req.header('user-agent')?.slice(0, 512);
  const pageContext = { url: v.url, path, referrer: v.referrer, search, title: v.t.title };
  try {
    const event = normalizeEvent(
      {
        type: 'page',
        name: v.t.title,
        messageId: `page-${randomUUID()}`,
        anonymousId: v.anonymousId,
        properties: {
          ...pageContext,
          pageId: v.page.id,
          pageVersion: v.page.version,
          variant: v.variant,
          formIds: v.t.formIds,
        },
        context: {
          page: pageContext,
          ...(Object.keys(utm).length > 0 ? { campaign: { ...utm, name: utm.campaign } } : {}),
          ...(userAgent ? { userAgent } : {}),
        },
      },
      {
        workspaceId: v.page.workspaceId,
        receivedAt: new Date(v.nowMs),
        ip: v.ip,
        keyKind: 'client',
        timeBounds: deps.timeBounds,
      },
    );
    const key = eventKey(event.workspaceId, v.anonymousId);
    // one anonymousId's flood goes to the overflow lane, as on /v1 (ingest/app.ts)
    const topic =
      deps.hotKeys && !deps.hotKeys.limiter.take(key, 1).ok ? deps.hotKeys.overflowTopic : deps.eventsTopic;
    await withTimeout(
      deps.producer.send(topic, [{ key, value: JSON.stringify(event) }]),
      deps.produceTimeoutMs,
      'kafka produce',
    );
  } catch (err) {
    // the visitor still gets the page; the view is not counted
    deps.log.warn({ err: (err as Error).message, pageId: v.page.id }, 'page_view_not_tracked');
  }
}

function fill(t: Template, value: (s: Slot) => string): string {
  let out = t.parts[0]!;
  for (let i = 0; i < t.slots.length; i++) out += esc(value(t.slots[i]!)) + t.parts[i + 1]!;
  return out;
}

function httpUrl(v: string): string | undefined {
  if (v.length > 2048) return undefined;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.toString() : undefined;
  } catch {
    return undefined;
  }
}

const STYLE =
  'body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#111}' +
  'img{max-width:100%;height:auto}.button{display:inline-block;padding:.6rem 1.2rem;background:#1a56db;color:#fff;' +
  'border-radius:.3rem;text-decoration:none}form{margin:1.5rem 0}';

function document(title: string, description: string | undefined, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)}</title>${description ? `<meta name="description" content="${esc(description)}">` : ''}<style>${STYLE}</style></head><body><main>${body}</main></body></html>`;
}

/**
 * A variant of a page as a template. Slot markers carry a per-process random nonce: no
 * text of a definition can forge one (and esc leaves them as they are).
 */
const NONCE = randomBytes(12).toString('hex');
const MARKER = new RegExp(`\u0001${NONCE}:(\\d+)\u0001`);

export function renderPage(
  page: PageDefinition,
  variant: PageVariant,
  formOf: (id: string) => FormDefinition | undefined,
): Template {
  const slots: Slot[] = [];
  const mark = (s: Slot) => {
    slots.push(s);
    return `\u0001${NONCE}:${slots.length - 1}\u0001`;
  };
  const imgOrigins = new Set<string>();
  const formOrigins = new Set<string>();
  const title = page.title ?? page.name;
  let headings = 0;
  const hidden = (name: string, value: string) =>
    `<input type="hidden" name="${esc(name)}" value="${esc(value)}">`;

  const block = (b: PageBlock): string => {
    switch (b.type) {
      case 'heading': {
        const level = b.level ?? (headings++ === 0 ? 1 : 2);
        return `<h${level}>${esc(b.text)}</h${level}>`;
      }
      case 'text':
        return b.text
          .split(/\r?\n[ \t]*\r?\n/)
          .filter((p) => p.trim() !== '')
          .map((p) => `<p>${p.split(/\r?\n/).map(esc).join('<br>')}</p>`)
          .join('');
      case 'image': {
        // checked http(s) when saved; its origin is the only one images may come from
        const u = new URL(b.url);
        imgOrigins.add(u.origin);
        const size = `${b.width ? ` width="${b.width}"` : ''}${b.height ? ` height="${b.height}"` : ''}`;
        return `<p><img src="${esc(u.toString())}" alt="${esc(b.alt)}"${size} loading="lazy" referrerpolicy="no-referrer"></p>`;
      }
      case 'button':
        return `<p><a class="button" href="${esc(new URL(b.url).toString())}" rel="noopener noreferrer">${esc(b.label)}</a></p>`;
      case 'form': {
        const form = formOf(b.formId);
        if (form?.status !== 'active') return '<p><em>This form is not available at the moment.</em></p>';
        if ('redirect' in form.success) formOrigins.add(new URL(form.success.redirect).origin);
        const whole = renderForm(form, {
          action: `/v1/forms/${form.workspaceId}/${form.id}/submit`,
          token: mark({ kind: 'token', formId: form.id }),
          page: mark({ kind: 'page' }),
          referrer: mark({ kind: 'referrer' }),
        });
        const from = whole.indexOf('<form ');
        const to = whole.lastIndexOf('</form>');
        if (from < 0 || to < 0) return '';
        const f = whole.slice(from, to + '</form>'.length);
        const open = f.indexOf('>') + 1;
        return (
          f.slice(0, open) +
          hidden(FORM_META.pageId, page.id) +
          hidden(FORM_META.variant, variant.id) +
          `<input type="hidden" name="${FORM_META.anonymousId}" value="${mark({ kind: 'anon' })}">` +
          f.slice(open)
        );
      }
    }
  };

  const html = document(title, page.description, variant.blocks.map(block).join(''));
  const pieces = html.split(MARKER);
  // split with a capture group: text, index, text, index, …, text
  const parts: string[] = [];
  const used: Slot[] = [];
  for (let i = 0; i < pieces.length; i++)
    if (i % 2 === 0) parts.push(pieces[i]!);
    else used.push(slots[Number(pieces[i])]!);
  const csp = [
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    ...(imgOrigins.size > 0 ? [`img-src ${[...imgOrigins].join(' ')}`] : []),
    // the forms post to this host, which may send the browser on to a form's redirect
    `form-action 'self'${[...formOrigins].map((o) => ` ${o}`).join('')}`,
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const bytes = 2 * parts.reduce((n, p) => n + p.length, 0);
  return { parts, slots: used, csp, formIds: formIdsOf(variant.blocks), title, bytes };
}

function htmlAnswer(c: Context, status: 200 | 404, body: string, csp: string) {
  c.header('Content-Security-Policy', csp);
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'strict-origin-when-cross-origin');
  return c.html(body, status);
}

function notFound(c: Context) {
  c.header('Cache-Control', 'no-store');
  return htmlAnswer(
    c,
    404,
    document(
      'Page not found',
      undefined,
      '<h1>Page not found</h1><p>This page does not exist or is not published.</p>',
    ),
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
  );
}

/**
 * The pages and forms of every workspace, reloaded when the definition store's revision
 * moves; the generation moves only when a page or form changed (another kind's edit keeps
 * the rendered pages).
 */
export function watchPages(
  store: DefinitionStore,
  log: Logger,
  pollMs: number,
): PageSource & { stop(): void } {
  let bySlug = new Map<string, PageDefinition>();
  let forms = new Map<string, FormDefinition>();
  let generation = 0;
  let signature = '';
  const watch = watchDefinitions({
    store,
    log,
    intervalMs: pollMs,
    load: async () => {
      const [pageList, formList] = await Promise.all([store.list('pages'), store.list('forms')]);
      const sig = createHash('sha256')
        .update(JSON.stringify([pageList, formList]))
        .digest('base64');
      if (sig === signature) return;
      const nextPages = new Map<string, PageDefinition>();
      for (const p of pageList) {
        const key = `${p.workspaceId}/${p.slug}`;
        // slugs are unique per workspace; should two ever meet, the published one is served
        if (!nextPages.has(key) || p.status === 'published') nextPages.set(key, p);
      }
      bySlug = nextPages;
      forms = new Map(formList.map((f) => [`${f.workspaceId}/${f.id}`, f]));
      signature = sig;
      generation++;
    },
  });
  return {
    bySlug: (ws, slug) => bySlug.get(`${ws}/${slug}`),
    form: (ws, id) => forms.get(`${ws}/${id}`),
    generation: () => generation,
    refresh: () => watch.current(),
    stop: () => watch.stop(),
  };
}
