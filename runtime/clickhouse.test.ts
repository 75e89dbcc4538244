// insertFormatted on a ClickHouse server: no server runs here, so a loopback HTTP listener
// stands in to check the request the client sends (the chDB path is covered by the sink's
// tests). The INSERT … FORMAT goes in the query string, the payload is the body unchanged.
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClickHouseClient, createClickHouse, insertFormatted } from './clickhouse.ts';

const seen: Array<{ url: string; body: string }> = [];
let url = '';
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    seen.push({ url: req.url ?? '', body: Buffer.concat(chunks).toString() });
    res.setHeader('X-ClickHouse-Summary', '{"written_rows":"2"}');
    res.end('');
  });
});
let ch: ClickHouseClient;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  ch = await createClickHouse({ kind: 'server', url, user: 'default', password: '', database: 'cdp' });
});
afterAll(async () => {
  await ch?.close();
  server.close();
});

describe('insertFormatted against a server', () => {
  it('sends the payload as the body of INSERT … FORMAT, settings as parameters', async () => {
    seen.length = 0;
    const body = '{"a":1}\n{"a":2}\n';
    await insertFormatted(ch, 'events_intake', Buffer.from(body), 'JSONEachRow', {
      input_format_json_read_objects_as_strings: 1,
    });
    const insert = seen.find((r) =>
      new URL(r.url, url).searchParams.get('query')?.startsWith('INSERT INTO events_intake'),
    );
    expect(insert, JSON.stringify(seen)).toBeDefined();
    const q = new URL(insert!.url, url).searchParams;
    expect(q.get('query')).toBe('INSERT INTO events_intake FORMAT JSONEachRow');
    expect(q.get('input_format_json_read_objects_as_strings')).toBe('1');
    expect(insert!.body).toBe(body);
  });

  it('refuses identifiers that are not plain names', async () => {
    await expect(
      insertFormatted(ch, 'events; DROP TABLE x', Buffer.from('{}'), 'JSONEachRow', {}),
    ).rejects.toThrow(/bad identifier/);
    await expect(
      insertFormatted(ch, 'events', Buffer.from('[]'), 'JSONCompactEachRow', {}, ['a', 'b)']),
    ).rejects.toThrow(/bad identifier/);
  });
});
