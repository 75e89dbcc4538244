// Which services `cdp dev` puts in which process, and each child's environment (pure logic;
// the processes themselves are tested in test/e2e/dev-lifecycle.test.ts).
import { describe, expect, it } from 'vitest';
import { devProcesses, processEnv } from './dev-processes.ts';
import { SERVICE_NAMES } from './services.ts';

describe('devProcesses', () => {
  it('puts every service in exactly one process, the ClickHouse users together', () => {
    const ps = devProcesses();
    const all = ps.flatMap((p) => p.services);
    expect([...all].sort()).toEqual([...SERVICE_NAMES].sort());
    expect(new Set(all).size).toBe(all.length);
    const core = ps.find((p) => p.name === 'core')!;
    for (const s of ['processor', 'ledger', 'query'] as const) expect(core.services).toContain(s);
    expect(ps.find((p) => p.name === 'ingest')!.services).toEqual(['ingest']);
    // ingest stops first
    expect(ps.find((p) => p.name === 'ingest')!.stage).toBeLessThan(core.stage);
  });

  it('leaves out processes with nothing to run', () => {
    expect(devProcesses(['ingest']).map((p) => p.name)).toEqual(['ingest']);
  });
});

describe('processEnv', () => {
  const [core, activation, ingest] = devProcesses();
  it('names the process in its logs and keeps the rest of the environment', () => {
    const env = processEnv(ingest!, 2, { KAFKA_BROKERS: 'k:1', CDP_INGEST_PORT: '9000' });
    expect(env).toMatchObject({
      KAFKA_BROKERS: 'k:1',
      CDP_INGEST_PORT: '9000',
      CDP_PROCESS_NAME: 'cdp:ingest',
    });
  });

  it('gives each process its own metrics port, and leaves 0 or unset alone', () => {
    expect(processEnv(core!, 0, { CDP_METRICS_PORT: '9464' }).CDP_METRICS_PORT).toBe('9464');
    expect(processEnv(activation!, 1, { CDP_METRICS_PORT: '9464' }).CDP_METRICS_PORT).toBe('9465');
    expect(processEnv(ingest!, 2, { CDP_METRICS_PORT: '9464' }).CDP_METRICS_PORT).toBe('9466');
    expect(processEnv(ingest!, 2, { CDP_METRICS_PORT: '0' }).CDP_METRICS_PORT).toBe('0');
    expect(processEnv(ingest!, 2, {}).CDP_METRICS_PORT).toBeUndefined();
    // not a number: passed as it is, for the child's config check to refuse
    expect(processEnv(ingest!, 2, { CDP_METRICS_PORT: 'x' }).CDP_METRICS_PORT).toBe('x');
  });
});
