// The Grafana dashboard in infra/ reads only metrics this registry has (so a renamed metric
// breaks this test, not an operator's dashboard), and the instrumented handler counts and times
// batches, failures included.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { instrumentHandler, registry } from './metrics.ts';

const DASHBOARD = new URL('../infra/grafana/cdp-pipeline.json', import.meta.url);

describe('metrics', () => {
  it('every metric the dashboard queries exists', async () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: Array<{ targets: Array<{ expr: string }> }>;
    };
    const used = new Set<string>();
    for (const p of dash.panels)
      for (const t of p.targets) for (const m of t.expr.matchAll(/\bcdp_[a-z0-9_]+/g)) used.add(m[0]);
    expect(used.size).toBeGreaterThan(10);
    const have = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    const missing = [...used].filter((n) => !have.has(n) && !have.has(n.replace(/_(bucket|count|sum)$/, '')));
    expect(missing).toEqual([]);
  });

  it('counts and times batches, and counts a failing one', async () => {
    const group = `g-${Date.now()}`;
    const ok = instrumentHandler(group, async () => {});
    const bad = instrumentHandler(group, async () => {
      throw new Error('boom');
    });
    const batch = { topic: 't1', partition: 0, messages: [{}, {}, {}] as never[] };
    const ctx = { heartbeat: async () => {}, isActive: () => true };
    await ok(batch, ctx);
    await expect(bad(batch, ctx)).rejects.toThrow('boom');
    const text = await registry.metrics();
    expect(text).toContain(`cdp_kafka_consumed_messages_total{group="${group}",topic="t1"} 3`);
    expect(text).toContain(`cdp_kafka_batch_failures_total{group="${group}"} 1`);
    expect(text).toContain(`cdp_kafka_batch_seconds_count{group="${group}"} 2`);
  });
});
