// The BI SQL endpoint's configuration (CDP_BI_*): on by default at ClickHouse's port, on
// any free port when the query port is, off on request, limits as given or refused.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../runtime/config.ts';

describe('CDP_BI_* configuration', () => {
  it('listens on the query host at 8123 by default, with the documented limits', () => {
    expect(loadConfig({}).bi).toEqual({
      host: '127.0.0.1',
      port: 8123,
      limits: {
        maxExecutionSeconds: 30,
        maxResultRows: 1_000_000,
        maxResultBytes: 100_000_000,
        maxMemoryBytes: 1_000_000_000,
        maxConcurrent: 4,
      },
    });
  });

  it('takes any free port when the query port does (tests, several stacks on one machine)', () => {
    expect(loadConfig({ CDP_QUERY_PORT: '0' }).bi?.port).toBe(0);
    expect(loadConfig({ CDP_QUERY_PORT: '0', CDP_BI_PORT: '9123' }).bi?.port).toBe(9123);
    expect(loadConfig({ CDP_QUERY_HOST: 'localhost' }).bi?.host).toBe('localhost');
    expect(loadConfig({ CDP_BI_HOST: '10.0.0.5' }).bi?.host).toBe('10.0.0.5');
  });

  it('is off with CDP_BI_SQL=false, and refuses limits out of range', () => {
    expect(loadConfig({ CDP_BI_SQL: 'false' }).bi).toBeNull();
    for (const env of [
      { CDP_BI_MAX_EXECUTION_S: '0' },
      { CDP_BI_MAX_CONCURRENT: '1000' },
      { CDP_BI_PORT: '70000' },
    ])
      expect(() => loadConfig(env)).toThrow(ConfigError);
  });
});
