// A local Salesforce for the destination tests: the sObject Collections upsert as Salesforce
// documents it — PATCH /services/data/vXX.X/composite/sobjects/{object}/{externalIdField},
// OAuth Bearer token, `{allOrNone, records: [{attributes: {type}, <field>: id, …}]}` with 1..200
// records — answering a 200 with one result per record in order (`{id, success, errors:
// [{statusCode, message, fields}], created}`), request-level errors as `[{message,
// errorCode}]` (401 INVALID_SESSION_ID, 400 INVALID_FIELD / JSON_PARSER_ERROR, 403
// REQUEST_LIMIT_EXCEEDED) and `Sforce-Limit-Info: api-usage=used/max` on every answer.
// Record rules: fields must exist on the object; a new Contact needs LastName; Email must
// look like one; ids in `lockOnce` fail once with UNABLE_TO_LOCK_ROW.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface SalesforceRequest {
  at: number;
  /** When the answer was written. */
  end: number;
  /** The answer said the org's limit is spent (403 REQUEST_LIMIT_EXCEEDED, or api-usage at its max). */
  limited: boolean;
  status: number;
  records: Array<Record<string, unknown>>;
}

const CONTACT_FIELDS = new Set([
  'LastName',
  'FirstName',
  'Email',
  'Phone',
  'Title',
  'Plan__c',
  'External_Id__c',
]);

export async function salesforceServer(o: {
  token: string;
  object?: string;
  externalIdField?: string;
  /** The org's API requests per 24 hours (Sforce-Limit-Info's max). */
  apiLimit?: number;
  lockOnce?: Set<string>;
}) {
  const object = o.object ?? 'Contact';
  const field = o.externalIdField ?? 'External_Id__c';
  let limit = o.apiLimit ?? 15_000;
  let used = 0;
  const requests: SalesforceRequest[] = [];
  const store = new Map<string, Record<string, unknown>>();
  const locked = new Set(o.lockOnce ?? []);
  let nextId = 1;

  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.statusCode = status;
    res.setHeader('content-type', 'application/json;charset=UTF-8');
    res.setHeader('sforce-limit-info', `api-usage=${used}/${limit}`);
    res.end(JSON.stringify(body));
    const last = requests.at(-1);
    if (last) {
      last.end = Date.now();
      last.limited = status === 403 || used >= limit;
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse, text: string) => {
    const now = Date.now();
    const rec = (status: number, records: SalesforceRequest['records'] = []) =>
      requests.push({ at: now, end: now, limited: false, status, records });
    if (req.headers.authorization !== `Bearer ${o.token}`) {
      rec(401);
      return reply(res, 401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
    }
    used++;
    if (used > limit) {
      let refused: SalesforceRequest['records'] = [];
      try {
        const b = JSON.parse(text) as { records?: unknown };
        if (Array.isArray(b.records)) refused = b.records as SalesforceRequest['records'];
      } catch {}
      rec(403, refused);
      return reply(res, 403, [
        { message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' },
      ]);
    }
    const m =
      /^\/services\/data\/v[0-9]{2,3}\.0\/composite\/sobjects\/([A-Za-z0-9_]+)\/([A-Za-z0-9_]+)$/.exec(
        req.url ?? '',
      );
    if (req.method !== 'PATCH' || !m) {
      rec(404);
      return reply(res, 404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
    }
    if (m[1] !== object || m[2] !== field) {
      rec(400);
      return reply(res, 400, [
        {
          errorCode: 'INVALID_FIELD',
          message: `Provided external ID field does not exist or is not accessible: ${m[2]}`,
        },
      ]);
    }
    const bad = (errorCode: string, message: string) => {
      rec(400);
      reply(res, 400, [{ message, errorCode }]);
    };
    let body: { allOrNone?: unknown; records?: unknown };
    try {
      body = JSON.parse(text);
    } catch {
      return bad('JSON_PARSER_ERROR', 'Unexpected character at [line:1]');
    }
    if (body.allOrNone !== undefined && typeof body.allOrNone !== 'boolean')
      return bad('JSON_PARSER_ERROR', 'allOrNone must be a boolean');
    if (!Array.isArray(body.records) || body.records.length === 0)
      return bad('INVALID_FIELD', 'records: at least one record');
    if (body.records.length > 200)
      return bad(
        'EXCEEDED_ID_LIMIT',
        'record limit reached. cannot submit more than 200 records into this call',
      );
    const records = body.records as Array<Record<string, unknown>>;
    const ids = new Set<string>();
    for (const r of records) {
      if ((r.attributes as { type?: unknown } | undefined)?.type !== object)
        return bad('INVALID_TYPE', 'Each record must have attributes.type');
      for (const k of Object.keys(r))
        if (k !== 'attributes' && !CONTACT_FIELDS.has(k))
          return bad('INVALID_FIELD', `No such column '${k}' on sobject of type ${object}`);
      const id = r[field];
      if (typeof id !== 'string' || id === '') return bad('INVALID_FIELD', `${field}: required`);
      if (ids.has(id)) return bad('INVALID_FIELD', `Duplicate external id specified: ${id}`);
      ids.add(id);
    }
    const results = records.map((r) => {
      const id = r[field] as string;
      const fail = (statusCode: string, message: string, fields: string[]) => ({
        success: false,
        errors: [{ statusCode, message, fields }],
      });
      if (locked.delete(id))
        return fail('UNABLE_TO_LOCK_ROW', 'unable to obtain exclusive access to this record', []);
      if (typeof r.Email === 'string' && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(r.Email))
        return fail('INVALID_EMAIL_ADDRESS', `Email: invalid email address: ${r.Email}`, ['Email']);
      const before = store.get(id);
      if (!before && (typeof r.LastName !== 'string' || r.LastName === ''))
        return fail('REQUIRED_FIELD_MISSING', 'Required fields are missing: [LastName]', ['LastName']);
      const { attributes: _a, ...fields } = r;
      const sfId = (before?.Id as string | undefined) ?? `003${String(nextId++).padStart(15, '0')}`;
      store.set(id, { ...before, ...fields, Id: sfId });
      return { id: sfId, success: true, errors: [], created: !before };
    });
    rec(200, records);
    reply(res, 200, results);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    store,
    /** The org's limit changes (raised by an admin, or the rolling 24 hours moved on). */
    setApiLimit: (n: number) => {
      limit = n;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
