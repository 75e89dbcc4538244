// The import readers and row checks (pure): CSV quoting across chunk boundaries, BOM, CRLF,
// ragged and broken rows with their line numbers; JSON lines; the reasons never repeat a value.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CsvReader, type CsvRecord, JsonLinesReader, MAX_RECORD_CHARS } from '../../query/imports/parse.ts';
import { checkCsvRecord, checkHeader, checkJsonRecord } from '../../query/imports/rows.ts';

function readCsv(chunks: string[]): CsvRecord[] {
  const out: CsvRecord[] = [];
  const r = new CsvReader();
  for (const c of chunks) r.write(c, (x) => out.push(x));
  r.end((x) => out.push(x));
  return out;
}

/** Cuts text into chunks at the given points. */
const cut = (text: string, at: number[]) => {
  const points = [...new Set(at.map((p) => p % (text.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(text.slice(prev, p));
    prev = p;
  }
  out.push(text.slice(prev));
  return out;
};

const NOW = Date.parse('2026-12-05T12:00:00Z');

describe('CSV reader', () => {
  const file =
    '\uFEFFuserId,email,note\r\n' +
    'u1,a@example.com,"hello, ""world"""\r\n' +
    '\r\n' +
    'u2,,"two\r\nlines"\r\n' +
    'u3,b@example.com,plain\n' +
    'u4,bad"quote,x\n' +
    'u5,"closed"after,x\n' +
    'u6,"never closed,x\n';

  it('reads quoted fields, BOM, CRLF and LF, skips blank lines, reports broken rows by the line they start on', () => {
    expect(readCsv([file])).toEqual([
      { line: 1, fields: ['userId', 'email', 'note'] },
      { line: 2, fields: ['u1', 'a@example.com', 'hello, "world"'] },
      { line: 4, fields: ['u2', '', 'two\r\nlines'] },
      { line: 6, fields: ['u3', 'b@example.com', 'plain'] },
      { line: 7, error: expect.stringContaining('quote inside an unquoted field') },
      { line: 8, error: 'text after a closing quote' },
      { line: 9, error: expect.stringContaining('not closed') },
    ]);
  });

  it('gives the same records however the text is cut into chunks', () => {
    const whole = readCsv([file]);
    fc.assert(
      fc.property(fc.array(fc.nat({ max: file.length }), { maxLength: 12 }), (at) => {
        expect(readCsv(cut(file, at))).toEqual(whole);
      }),
      { numRuns: 400 },
    );
  });

  it('reports a record over the size limit and goes on with the next', () => {
    const big = `u1,"${'x'.repeat(MAX_RECORD_CHARS + 10)}"\nu2,ok\n`;
    expect(readCsv(cut(big, [1000, 40_000]))).toEqual([
      { line: 1, error: `record over ${MAX_RECORD_CHARS} characters` },
      { line: 2, fields: ['u2', 'ok'] },
    ]);
    // a line of separators only: refused, not collected
    const commas = `${','.repeat(MAX_RECORD_CHARS * 4)}\nu3,ok\n`;
    expect(readCsv(cut(commas, [70_000, 200_000]))).toEqual([
      { line: 1, error: `record over ${MAX_RECORD_CHARS} characters` },
      { line: 2, fields: ['u3', 'ok'] },
    ]);
  });
});

describe('JSON lines reader', () => {
  it('reads objects per line, skips blank lines, reports malformed and oversized lines with their numbers', () => {
    const text = `{"a":1}\r\n\n{bad\n${JSON.stringify({ s: 'y'.repeat(MAX_RECORD_CHARS) })}\n{"b":2}`;
    const out: unknown[] = [];
    const r = new JsonLinesReader();
    for (const c of cut(text, [3, 20, 30_000])) r.write(c, (x) => out.push(x));
    r.end((x) => out.push(x));
    expect(out).toEqual([
      { line: 1, value: { a: 1 } },
      { line: 3, error: expect.stringMatching(/^malformed JSON/) },
      { line: 4, error: `line over ${MAX_RECORD_CHARS} characters` },
      { line: 5, value: { b: 2 } },
    ]);
  });
});

describe('row checks', () => {
  it('traits: header rules, ragged rows, identifiers, never echoing values', () => {
    expect(() => checkHeader('traits', ['plan'])).toThrow(/userId or email/);
    expect(() => checkHeader('traits', ['userId', 'plan', 'plan'])).toThrow(/appears twice/);
    expect(() => checkHeader('traits', ['userId', '__proto__'])).toThrow(/not allowed/);
    const h = checkHeader('traits', ['userId', 'email', 'plan']);
    expect(checkCsvRecord('traits', h, ['u1', '', 'pro'], 2, NOW)).toEqual({
      ok: true,
      row: { kind: 'traits', line: 2, userId: 'u1', traits: { plan: 'pro' } },
    });
    expect(checkCsvRecord('traits', h, ['u1', 'pro'], 3, NOW)).toEqual({
      ok: false,
      line: 3,
      reason: 'has 2 fields where the header has 3',
    });
    const secret = '<script>alert(1)</script>';
    const bad = checkCsvRecord('traits', h, ['', secret, 'x'], 4, NOW);
    expect(bad).toEqual({ ok: false, line: 4, reason: 'email: not an email address' });
    expect(checkCsvRecord('traits', h, ['undefined', '', 'x'], 5, NOW)).toMatchObject({ ok: false });
    expect(checkCsvRecord('traits', h, ['', '', 'x'], 6, NOW)).toEqual({
      ok: false,
      line: 6,
      reason: 'needs a userId or an email',
    });
    // a spreadsheet formula is a value like any other: stored as the text it is
    expect(checkCsvRecord('traits', h, ['u7', '', '=HYPERLINK("x")'], 7, NOW)).toMatchObject({
      ok: true,
      row: { traits: { plan: '=HYPERLINK("x")' } },
    });
  });

  it('consent: channel, purpose, status, a source and a dated decision are required', () => {
    const h = checkHeader('consent', ['email', 'channel', 'purpose', 'status', 'timestamp', 'source']);
    expect(() => checkHeader('consent', ['email', 'channel', 'status', 'timestamp'])).toThrow(/source/);
    expect(() =>
      checkHeader('consent', ['email', 'channel', 'status', 'timestamp', 'source', 'evil\u0000']),
    ).toThrow('header: unknown column "evil"');
    expect(
      checkCsvRecord(
        'consent',
        h,
        ['A@Example.com', 'email', 'news', 'Revoked', '2026-01-02T03:04:05Z', 'crm'],
        2,
        NOW,
      ),
    ).toEqual({
      ok: true,
      row: {
        kind: 'consent',
        line: 2,
        email: 'a@example.com',
        channel: 'email',
        purpose: 'news',
        subscribed: false,
        atMs: Date.parse('2026-01-02T03:04:05Z'),
        origin: 'crm',
      },
    });
    const row = (over: Partial<Record<string, string>>) => {
      const r = {
        email: 'a@b.c',
        channel: 'email',
        purpose: 'news',
        status: 'subscribed',
        timestamp: '2026-01-02',
        source: 'crm',
        ...over,
      };
      return checkJsonRecord('consent', r, 9, NOW);
    };
    expect(row({ status: 'maybe' })).toMatchObject({ ok: false, reason: 'status: subscribed or revoked' });
    expect(row({ channel: 'EMAIL!' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^channel/),
    });
    expect(row({ timestamp: '2026-01-02 03:04' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/ISO 8601/),
    });
    expect(row({ timestamp: '2027-01-01T00:00:00Z' })).toMatchObject({
      ok: false,
      reason: 'timestamp: in the future',
    });
    expect(row({ source: '' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^source: required/),
    });
    expect(checkJsonRecord('consent', [1], 3, NOW)).toEqual({ ok: false, line: 3, reason: 'a JSON object' });
  });

  it('traits in JSON lines: an object of bounded names and values', () => {
    expect(
      checkJsonRecord('traits', { userId: 'u', traits: { a: 1, b: { c: true } } }, 1, NOW),
    ).toMatchObject({ ok: true });
    expect(checkJsonRecord('traits', { userId: 'u', traits: 'x' }, 1, NOW)).toMatchObject({
      reason: 'traits: an object',
    });
    expect(checkJsonRecord('traits', { userId: 'u', traits: { a: 'x'.repeat(9000) } }, 1, NOW)).toMatchObject(
      {
        ok: false,
      },
    );
    expect(checkJsonRecord('traits', { userId: 'u', other: 1, traits: {} }, 1, NOW)).toMatchObject({
      reason: 'unknown field "other"',
    });
  });

  it("JSON rows get the ingest edge's structural bounds: depth, key count, prototype keys", () => {
    // as JSON.parse gives them (a `__proto__` key is then an own key)
    const parsed = (o: string) => JSON.parse(o) as unknown;
    let deep: unknown = 1;
    for (let i = 0; i < 30; i++) deep = { a: deep };
    expect(checkJsonRecord('traits', { userId: 'u', traits: { x: deep } }, 2, NOW)).toEqual({
      ok: false,
      line: 2,
      reason: expect.stringMatching(/^"traits\.x(\.a)+": nested deeper than 24 levels$/),
    });
    // the edge's bound exactly: an object 24 levels below the row is fine, 25 is not
    let ok: unknown = 1;
    for (let i = 0; i < 23; i++) ok = { a: ok };
    expect(checkJsonRecord('traits', { userId: 'u', traits: { x: ok } }, 2, NOW)).toMatchObject({ ok: true });
    expect(checkJsonRecord('traits', { userId: 'u', traits: { x: { a: ok } } }, 2, NOW)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/nested deeper than 24 levels$/),
    });

    const many = Object.fromEntries(Array.from({ length: 2100 }, (_, i) => [`k${i}`, i]));
    expect(checkJsonRecord('traits', { userId: 'u', traits: { prefs: many } }, 3, NOW)).toEqual({
      ok: false,
      line: 3,
      reason: expect.stringMatching(/: more than 2000 properties$/),
    });
    expect(
      checkJsonRecord('traits', { userId: 'u', traits: { list: Array(2500).fill(0) } }, 3, NOW),
    ).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/more than 2000 properties/),
    });

    for (const [line, text, where] of [
      [4, '{"userId":"u","traits":{"prefs":{"__proto__":{"admin":true}}}}', '"traits.prefs"'],
      [5, '{"userId":"u","traits":{"a":[{"constructor":{"prototype":{"x":1}}}]}}', '"traits.a[0]"'],
      [6, '{"userId":"u","traits":{"prototype":1}}', '"traits"'],
      [7, '{"userId":"u","__proto__":{"x":1},"traits":{}}', 'the row'],
    ] as const) {
      const checked = checkJsonRecord('traits', parsed(text), line, NOW);
      expect(checked).toEqual({
        ok: false,
        line,
        reason: expect.stringMatching(
          new RegExp(
            `^${where.replace(/[[\].]/g, '\\$&')}: key "(__proto__|constructor|prototype)" is not allowed$`,
          ),
        ),
      });
    }
    // consent rows too
    expect(
      checkJsonRecord(
        'consent',
        parsed(
          '{"email":"a@b.c","channel":"email","status":"revoked","timestamp":"2026-01-02","source":{"__proto__":1}}',
        ),
        8,
        NOW,
      ),
    ).toMatchObject({ ok: false, reason: '"source": key "__proto__" is not allowed' });
  });
});
