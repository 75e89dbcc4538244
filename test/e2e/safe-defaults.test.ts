// `cdp start` beyond loopback refuses the development keys, short keys, a missing
// unsubscribe secret and loopback webhooks: the process exits at once with the variables
// named, before it listens or connects to anything.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function start(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/cdp.js', 'start', 'ingest', 'query'], {
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'test',
        LOG_LEVEL: 'error',
        // nothing listens here: a process that got past its configuration would hang, not exit
        KAFKA_BROKERS: '127.0.0.1:1',
        REDIS_URL: 'redis://127.0.0.1:1',
        CDP_DATA_DIR: mkdtempSync(join(tmpdir(), 'cdp-safe-defaults-')),
        CDP_INGEST_PORT: '0',
        CDP_QUERY_PORT: '0',
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('cdp start beyond loopback', () => {
  it('exits naming each unsafe variable', async () => {
    const r = await start({
      CDP_QUERY_HOST: '0.0.0.0',
      CDP_ADMIN_KEY: 'dev-admin-key',
      CDP_WRITE_KEY: 'short-but-valid-key',
      CDP_WEBHOOK_ALLOW_LOOPBACK: 'true',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cdp: invalid configuration');
    expect(r.stderr).toContain(
      'CDP_WRITE_KEY: 19 characters; at least 32 are required when listening beyond loopback (CDP_QUERY_HOST=0.0.0.0)',
    );
    expect(r.stderr).toContain(
      'CDP_ADMIN_KEY: the public development key is refused when listening beyond loopback',
    );
    expect(r.stderr).toContain('CDP_UNSUBSCRIBE_SECRET: required when listening beyond loopback');
    expect(r.stderr).toContain('CDP_WEBHOOK_ALLOW_LOOPBACK: true is refused');
    // secrets are not echoed
    expect(r.stderr).not.toContain('short-but-valid-key');
  }, 40_000);

  it('exits when no keys are given at all, as a bare `cdp start` on 0.0.0.0 would have run on dev keys', async () => {
    const r = await start({ CDP_INGEST_HOST: '0.0.0.0' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /CDP_WRITE_KEY: required when listening beyond loopback \(CDP_INGEST_HOST=0\.0\.0\.0\)/,
    );
    expect(r.stderr).toMatch(/CDP_ADMIN_KEY: required/);
  }, 40_000);
});
