// A local HubSpot for the destination tests: the CRM v3 contacts batch upsert as HubSpot
// documents it, checked strictly — Bearer private-app token, JSON body `{inputs: [{id,
// idProperty, properties}]}` with 1..100 inputs, string property values, no duplicate ids —
// answering with HubSpot's error shapes (`{status: "error", message, correlationId,
// category}`), a 207 multi-status naming the records it refused, and the burst limit per
// rolling window with the X-HubSpot-RateLimit-* headers on every answer and a 429
// `RATE_LIMIT` past it. An enumeration property (`enumerations`) refuses a value that is not
// one of its options as HubSpot does: the whole batch is a 400 VALIDATION_ERROR naming the
// property and the value, and nothing in it is upserted. Nothing here accepts what HubSpot
// would not.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export const UPSERT_PATH = '/crm/v3/objects/contacts/batch/upsert';

export interface HubspotRequest {
  at: number;
  status: number;
  inputs: Array<{ id: string; idProperty: string; properties: Record<string, string> }>;
}

export interface HubspotOptions {
  token: string;
  /** Requests allowed per window (X-HubSpot-RateLimit-Max). */
  max?: number;
  /** The rolling window (X-HubSpot-RateLimit-Interval-Milliseconds); HubSpot's is 10 s. */
  intervalMs?: number;
  /** Send Retry-After (seconds) on a 429, as some HubSpot answers do. */
  retryAfterSeconds?: number;
  /** Ids refused one by one (a 207 naming them). */
  reject?: Set<string>;
  /** The first n requests (after auth) are throttled with a 429, whatever the window says. */
  throttleFirst?: number;
  /** Enumeration properties and their options: another value refuses the whole batch (400). */
  enumerations?: Record<string, string[]>;
  /** Answer this status to everything (after auth): 500, 503, or 'hang'. */
  fail?: number | 'hang';
}

export async function hubspotServer(o: HubspotOptions) {
  const max = o.max ?? 100;
  const intervalMs = o.intervalMs ?? 10_000;
  const requests: HubspotRequest[] = [];
  /** Contacts upserted, by id (the idProperty's value). */
  const contacts = new Map<string, Record<string, string>>();
  /** When each request within the rolling window was taken. */
  let window: number[] = [];
  const hanging = new Set<ServerResponse>();

  const reply = (res: ServerResponse, status: number, body: unknown, remaining: number) => {
    res.statusCode = status;
    res.setHeader('content-type', 'application/json;charset=utf-8');
    res.setHeader('x-hubspot-ratelimit-max', String(max));
    res.setHeader('x-hubspot-ratelimit-remaining', String(Math.max(0, remaining)));
    res.setHeader('x-hubspot-ratelimit-interval-milliseconds', String(intervalMs));
    res.end(JSON.stringify(body));
  };
  const error = (category: string, message: string, extra: Record<string, unknown> = {}) => ({
    status: 'error',
    message,
    correlationId: randomUUID(),
    category,
    ...extra,
  });

  const handle = (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    const now = Date.now();
    window = window.filter((t) => t > now - intervalMs);
    const remaining = max - window.length;
    const record = (status: number, inputs: HubspotRequest['inputs'] = []) =>
      requests.push({ at: now, status, inputs });
    if (req.headers.authorization !== `Bearer ${o.token}`) {
      record(401);
      return reply(
        res,
        401,
        error(
          'INVALID_AUTHENTICATION',
          'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview',
        ),
        remaining,
      );
    }
    if (req.method !== 'POST' || req.url !== UPSERT_PATH) {
      record(404);
      return reply(res, 404, error('OBJECT_NOT_FOUND', `No route for ${req.method} ${req.url}`), remaining);
    }
    let throttled = o.throttleFirst ?? 0;
    if (throttled > 0) o.throttleFirst = throttled - 1;
    else throttled = 0;
    if (remaining <= 0 || throttled > 0) {
      record(429);
      if (o.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(o.retryAfterSeconds));
      return reply(
        res,
        429,
        {
          status: 'error',
          message: 'You have reached your ten_secondly_rolling limit.',
          errorType: 'RATE_LIMIT',
          correlationId: randomUUID(),
          policyName: 'TEN_SECONDLY_ROLLING',
        },
        0,
      );
    }
    window.push(now);
    if (o.fail === 'hang') {
      hanging.add(res);
      return;
    }
    if (typeof o.fail === 'number') {
      record(o.fail);
      return reply(res, o.fail, error('INTERNAL_ERROR', 'internal error'), remaining - 1);
    }
    if (!String(req.headers['content-type']).startsWith('application/json')) {
      record(415);
      return reply(
        res,
        415,
        error('VALIDATION_ERROR', 'Content-Type must be application/json'),
        remaining - 1,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      record(400);
      return reply(res, 400, error('VALIDATION_ERROR', 'Invalid input JSON on line 1'), remaining - 1);
    }
    const inputs = (body as { inputs?: unknown })?.inputs;
    const invalid = (why: string) => {
      record(400);
      reply(res, 400, error('VALIDATION_ERROR', why), remaining - 1);
    };
    if (!Array.isArray(inputs) || inputs.length === 0) return invalid('inputs: must not be empty');
    if (inputs.length > 100) return invalid(`Input length ${inputs.length} exceeds the limit of 100`);
    const seen = new Set<string>();
    for (const [k, input] of inputs.entries()) {
      const i = input as Record<string, unknown>;
      if (typeof i?.id !== 'string' || i.id === '') return invalid(`inputs[${k}].id: must be a string`);
      if (typeof i.idProperty !== 'string') return invalid(`inputs[${k}].idProperty: must be a string`);
      if (i.properties === null || typeof i.properties !== 'object' || Array.isArray(i.properties))
        return invalid(`inputs[${k}].properties: must be an object`);
      for (const [p, v] of Object.entries(i.properties as Record<string, unknown>))
        if (typeof v !== 'string') return invalid(`inputs[${k}].properties.${p}: must be a string`);
      const extra = Object.keys(i).filter(
        (x) => !['id', 'idProperty', 'properties', 'objectWriteTraceId'].includes(x),
      );
      if (extra.length > 0) return invalid(`inputs[${k}]: unknown field ${extra[0]}`);
      if (seen.has(i.id)) return invalid(`Duplicate IDs found in batch input: [${i.id}]`);
      seen.add(i.id);
    }
    const typed = inputs as HubspotRequest['inputs'];
    // HubSpot checks property values before writing anything: one invalid option fails the batch
    for (const i of typed)
      for (const [p, options] of Object.entries(o.enumerations ?? {})) {
        const v = i.properties[p];
        if (v === undefined || v === '' || options.includes(v)) continue;
        record(400, typed);
        return reply(
          res,
          400,
          error(
            'VALIDATION_ERROR',
            `Property values were not valid: ${JSON.stringify([
              {
                isValid: false,
                message: `${v} was not one of the allowed options: ${options.map((x) => `[label: "${x}" value: "${x}"]`).join(', ')}`,
                error: 'INVALID_OPTION',
                name: p,
                localizedErrorMessage: `${v} was not one of the allowed options`,
              },
            ])}`,
          ),
          remaining - 1,
        );
      }
    const refused = typed.filter((i) => o.reject?.has(i.id));
    const results = typed
      .filter((i) => !o.reject?.has(i.id))
      .map((i, n) => {
        const merged = { ...contacts.get(i.id), ...i.properties, [i.idProperty]: i.id };
        contacts.set(i.id, merged);
        return {
          id: String(1000 + n),
          properties: merged,
          createdAt: new Date(now).toISOString(),
          archived: false,
        };
      });
    const at = new Date(now).toISOString();
    if (refused.length > 0) {
      record(207, typed);
      return reply(
        res,
        207,
        {
          status: 'COMPLETE',
          results,
          numErrors: refused.length,
          errors: refused.map((i) => ({
            status: 'error',
            category: 'VALIDATION_ERROR',
            message: `Property values were not valid for ${i.id}`,
            context: { ids: [i.id] },
          })),
          startedAt: at,
          completedAt: at,
        },
        remaining - 1,
      );
    }
    record(200, typed);
    reply(res, 200, { status: 'COMPLETE', results, startedAt: at, completedAt: at }, remaining - 1);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    contacts,
    close: () =>
      new Promise<void>((r) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
