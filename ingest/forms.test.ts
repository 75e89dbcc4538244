// Form submissions through app.request(), without a port, against generated input
// (fast-check): whatever is posted, the answer is a success or a 4xx (never a 5xx or a
// throw), and only a success puts anything on the producer: exactly an identify and a
// `Form Submitted` event, valid normalised events, carrying only the form's traits, with
// no markup. The producer records what it is given; the real stack is test/forms/.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { normalizedEventCheck } from '../schemas/event.ts';
import type { FormDefinition, PendingFormConsent } from '../schemas/form.ts';
import { createIngestApp } from './app.ts';
import { checkFormToken, signFormToken } from './form-token.ts';

const SECRET = 'form-secret-0123456789';
const NOW = Date.parse('2026-06-01T12:00:00Z');
const form: FormDefinition = {
  id: 'frm_1',
  workspaceId: 'ws1',
  version: 3,
  status: 'active',
  name: 'Demo',
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
  fields: [
    { name: 'email', label: 'Email', type: 'email', required: true },
    { name: 'company', label: 'Company', type: 'text', maxLength: 50 },
    { name: 'size', label: 'Size', type: 'number', min: 1, max: 1000, trait: 'team_size' },
    { name: 'plan', label: 'Plan', type: 'select', options: ['free', 'pro'] },
    { name: 'code', label: 'Code', type: 'text', pattern: '[A-Z]{3}-\\d{2}' },
    { name: 'agree', label: 'Agree', type: 'checkbox' },
  ],
  consents: [{ name: 'news', purpose: 'newsletter', channel: 'email', text: 'Send me news' }],
  success: { redirect: 'https://example.com/thanks' },
};
const TRAITS = new Set(['email', 'company', 'team_size', 'plan', 'code', 'agree']);

const sent: OutgoingMessage[] = [];
const queued: PendingFormConsent[] = [];
const producer: Producer = {
  connect: async () => {},
  disconnect: async () => {},
  send: async (_topic, messages) => {
    sent.push(...messages);
  },
};
const app = createIngestApp({
  producer,
  eventsTopic: 'events',
  resolveWriteKey: () => undefined,
  log: createLogger({ level: 'silent', name: 'test' }),
  forms: {
    forms: { get: (ws, id) => (ws === 'ws1' && id === 'frm_1' ? form : undefined), refresh: async () => {} },
    producer,
    eventsTopic: 'events',
    queueConsent: async (p) => {
      queued.push(p);
    },
    log: createLogger({ level: 'silent', name: 'test' }),
    now: () => new Date(NOW),
    secret: SECRET,
    minFillMs: 2000,
    maxAgeMs: 86_400_000,
    produceTimeoutMs: 1000,
  },
});
const token = signFormToken(SECRET, 'ws1', 'frm_1', NOW - 60_000);

async function submit(body: string | Uint8Array, type = 'application/x-www-form-urlencoded') {
  sent.length = 0;
  queued.length = 0;
  const res = await app.request('/v1/forms/ws1/frm_1/submit', {
    method: 'POST',
    body,
    headers: { 'content-type': type, accept: 'application/json' },
  });
  return { status: res.status, text: await res.text(), location: res.headers.get('location') };
}

/** A success produced exactly the two events, valid, with the form's traits only; a refusal nothing. */
const outcomes = { produced: 0, refused: 0 };
function expectOutcome(r: { status: number; text: string }, honeypot: unknown = undefined) {
  expect(r.status, r.text).toBeLessThan(500);
  outcomes[r.status === 200 && sent.length > 0 ? 'produced' : 'refused']++;
  if (r.status !== 200) {
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(JSON.parse(r.text)).toMatchObject({ success: false });
    expect(sent).toEqual([]);
    expect(queued).toEqual([]);
    return;
  }
  // a filled honeypot is answered as a success: nothing produced
  if (honeypot !== undefined && honeypot !== '' && honeypot !== false) {
    expect(sent).toEqual([]);
    expect(queued).toEqual([]);
    return;
  }
  expect(sent).toHaveLength(2);
  const [identify, track] = sent.map((m) => JSON.parse(String(m.value)));
  for (const e of [identify, track]) expect(normalizedEventCheck.Check(e)).toBe(true);
  expect(identify).toMatchObject({ type: 'identify', workspaceId: 'ws1', keyKind: 'client' });
  expect(track).toMatchObject({
    type: 'track',
    event: 'Form Submitted',
    properties: { formId: 'frm_1', formVersion: 3 },
  });
  for (const [k, v] of Object.entries(identify.traits)) {
    expect(TRAITS.has(k), k).toBe(true);
    if (typeof v === 'string') expect(v).not.toMatch(/<[A-Za-z!/?]/);
  }
}

const valid = { email: 'ada@example.com', _token: token };
const enc = (o: Record<string, string>) => new URLSearchParams(o).toString();

describe('form submissions (app.request)', () => {
  it('a valid post: 303 without JavaScript, JSON for a script; consent queued with its text', async () => {
    const res = await app.request('/v1/forms/ws1/frm_1/submit', {
      method: 'POST',
      body: enc({ ...valid, size: '12', news: 'on', agree: 'on', code: 'ABC-12' }),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('https://example.com/thanks');
    expect(JSON.parse(String(sent[0]!.value)).traits).toEqual({
      email: 'ada@example.com',
      team_size: 12,
      agree: true,
      code: 'ABC-12',
    });
    expect(queued).toMatchObject([
      {
        formId: 'frm_1',
        formVersion: 3,
        consents: [{ channel: 'email', purpose: 'newsletter', text: 'Send me news' }],
      },
    ]);
    const json = await submit(enc(valid));
    expect(json.status).toBe(200);
    expect(JSON.parse(json.text)).toEqual({ success: true, redirect: 'https://example.com/thanks' });
    expect(queued).toEqual([]); // the box was not ticked
  });

  it('a field named like a prototype property is refused as any unknown field', async () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const r = await submit(`${enc(valid)}&${name}=1`);
      expect(r.status, name).toBe(400);
      expect(JSON.parse(r.text).errors, name).toEqual({ [name]: 'not a field of this form' });
      expect(sent).toEqual([]);
    }
  });

  it('generated urlencoded posts: a success or a 4xx, and only a success produces', async () => {
    const value = fc.oneof(
      { arbitrary: fc.string({ maxLength: 80 }), weight: 1 },
      {
        arbitrary: fc.constantFrom('<script>x</script>', 'a<img src=x onerror=y>', '<!--', '</b>'),
        weight: 2,
      },
      fc.constantFrom('on', '', '12', '-1', '1e9', 'pro', 'ABC-12', 'a@b.co', '\u0000', 'x\ny'),
    );
    const name = fc.oneof(
      {
        arbitrary: fc.constantFrom(
          'company',
          'size',
          'plan',
          'code',
          'agree',
          'news',
          '_website',
          '_page',
          'anonymousId',
        ),
        weight: 6,
      },
      { arbitrary: fc.string({ maxLength: 12 }), weight: 1 },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(name, value), { maxLength: 4 }), async (pairs) => {
        // over a valid submission, so that many succeed (a name given twice keeps the last)
        const p = new URLSearchParams({ ...valid, ...Object.fromEntries(pairs) });
        expectOutcome(await submit(p.toString()), p.get('_website') ?? undefined);
      }),
      { numRuns: 500 },
    );
    // the property saw both sides
    expect(outcomes.produced).toBeGreaterThan(30);
    expect(outcomes.refused).toBeGreaterThan(30);
  });

  it('generated JSON bodies and arbitrary bytes: a success or a 4xx, and only a success produces', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 })),
        async (d) => {
          expectOutcome(await submit(JSON.stringify({ ...d, ...valid }), 'application/json'), d._website);
        },
      ),
      { numRuns: 200 },
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        expectOutcome(await submit(bytes));
      }),
      { numRuns: 200 },
    );
  });
});

describe('the time-to-fill token', () => {
  const opts = {
    secret: SECRET,
    ws: 'ws1',
    formId: 'frm_1',
    nowMs: NOW,
    minFillMs: 3000,
    maxAgeMs: 3_600_000,
  };
  it('takes a token of this form shown long enough ago and not too long', () => {
    expect(checkFormToken(signFormToken(SECRET, 'ws1', 'frm_1', NOW - 5000), opts)).toEqual({ ok: true });
  });
  it.each([
    ['too fast', signFormToken(SECRET, 'ws1', 'frm_1', NOW - 1000), 'too fast'],
    ['expired', signFormToken(SECRET, 'ws1', 'frm_1', NOW - 3_700_000), 'expired'],
    ['another form', signFormToken(SECRET, 'ws1', 'frm_2', NOW - 5000), 'invalid signature'],
    ['another workspace', signFormToken(SECRET, 'ws2', 'frm_1', NOW - 5000), 'invalid signature'],
    [
      'another secret',
      signFormToken('other-secret-0123456', 'ws1', 'frm_1', NOW - 5000),
      'invalid signature',
    ],
    [
      'a changed time',
      signFormToken(SECRET, 'ws1', 'frm_1', NOW - 5000).replace(/^\d+/, String(NOW - 6000)),
      'invalid signature',
    ],
    ['malformed', 'abc', 'malformed'],
    ['missing', undefined, 'missing'],
  ])('refuses %s', (_what, token, says) => {
    const r = checkFormToken(token, opts);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.error).toContain(says);
  });
});
