// /readyz is public: it names each check and says ok or fail, nothing more. Why a check
// failed (an error message can carry internal hosts and ports) goes to the log only.
import { Hono } from 'hono';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { mountHealth } from './http.ts';

describe('/readyz', () => {
  it('answers only ok/fail per check; the failure detail is logged, once while unchanged', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    let redisDown = true;
    const app = new Hono();
    mountHealth(
      app,
      {
        kafka: async () => {},
        redis: async () => {
          if (redisDown) throw new Error('connect ECONNREFUSED 10.20.30.40:6379');
        },
        clickhouse: () => new Promise<void>(() => {}), // never answers: the timeout fails it
      },
      50,
      log,
    );

    for (let i = 0; i < 2; i++) {
      const res = await app.request('/readyz');
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({
        status: 'not_ready',
        checks: { kafka: 'ok', redis: 'fail', clickhouse: 'fail' },
      });
      expect(text).not.toMatch(/10\.20\.30\.40|6379|ECONNREFUSED|timed out/);
    }
    const failed = lines.filter((l) => l.msg === 'readiness_check_failed');
    // logged with the detail, and not again on the second poll
    expect(failed.map((l) => [l.check, l.err])).toEqual([
      ['redis', 'connect ECONNREFUSED 10.20.30.40:6379'],
      ['clickhouse', 'clickhouse check timed out after 50 ms'],
    ]);

    redisDown = false;
    const app2 = new Hono();
    mountHealth(app2, { redis: async () => {} }, 50, log);
    const ok = await app2.request('/readyz');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ready', checks: { redis: 'ok' } });
    // the first app sees redis recover: logged once
    await app.request('/readyz');
    expect(lines.filter((l) => l.msg === 'readiness_check_recovered').map((l) => l.check)).toEqual(['redis']);
  });
});
