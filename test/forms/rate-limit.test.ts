// Form submissions are rate limited per form and per client address on the ingest host,
// before anything is read or stored: past either limit, a 429 with Retry-After (an HTML page
// for a form post, JSON for a script). The ingest and query services on the real Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import type { Config } from '../../runtime/config.ts';
import { adminApi, testConfig, testLogger } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
const api = adminApi(
  () => running.urls.query!,
  () => cfg,
);

beforeAll(async () => {
  cfg = testConfig({ CDP_FORMS_IP_RATE_PER_MINUTE: '6', CDP_FORMS_FORM_RATE_PER_MINUTE: '3' });
  running = await startServices(cfg, ['query', 'ingest'], testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
});

const form = {
  name: 'Contact',
  fields: [{ name: 'email', label: 'Email', type: 'email', required: true }],
  success: { message: 'Thanks' },
};

async function post(id: string, accept = 'text/html') {
  const res = await fetch(`${running.urls.ingest}/v1/forms/${cfg.keys.workspace}/${id}/submit`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept },
    // invalid (no email, no token): each post is answered at once, without Kafka
    body: 'email=',
  });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), text: await res.text() };
}

describe('form rate limits', () => {
  it('a form takes at most its per-form rate; an address at most its own across forms', async () => {
    const a = (await api('POST', '/v1/forms', form)).body.id as string;
    const b = (await api('POST', '/v1/forms', form)).body.id as string;
    for (let i = 0; i < 3; i++) expect((await post(a)).status).toBe(400);
    const perForm = await post(a);
    expect(perForm.status).toBe(429);
    expect(perForm.text).toContain('this form takes too many submissions');
    expect(Number(perForm.retryAfter)).toBeGreaterThanOrEqual(1);
    // another form still takes posts, until the address used up its six
    expect((await post(b)).status).toBe(400);
    expect((await post(b)).status).toBe(400);
    const perIp = await post(b, 'application/json');
    expect(perIp.status).toBe(429);
    expect(JSON.parse(perIp.text)).toMatchObject({
      success: false,
      error: 'too many submissions from your address: try again later',
    });
    expect(Number(perIp.retryAfter)).toBeGreaterThanOrEqual(1);
  });
});
