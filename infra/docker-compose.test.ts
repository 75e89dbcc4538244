// The compose stack listens on 0.0.0.0: it must ship no development keys, make compose
// stop when the operator's keys are missing, and load with the operator's keys.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../runtime/config.ts';

const compose = readFileSync(new URL('./docker-compose.yml', import.meta.url), 'utf8');

/** The services' shared environment block (`environment: &env`), values as written. */
function sharedEnvironment(): Record<string, string> {
  const block = /environment: &env\n((?: {4}.*\n)+)/.exec(compose)?.[1];
  if (!block) throw new Error('no `environment: &env` block in docker-compose.yml');
  const env: Record<string, string> = {};
  for (const line of block.split('\n')) {
    const m = /^ {4}([A-Z0-9_]+): (.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

/** Compose's `${VAR:?message}` and `${VAR:-default}` interpolation against `shell`. */
function interpolate(env: Record<string, string>, shell: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env))
    out[k] = v.replace(
      /\$\{([A-Z0-9_]+)(?::([?-])([^}]*))?\}/g,
      (_, name: string, op?: string, arg?: string) => {
        const given = shell[name];
        if (given) return given;
        if (op === '?') throw new Error(`${name}: ${arg}`);
        return op === '-' ? (arg ?? '') : '';
      },
    );
  return out;
}

describe('infra/docker-compose.yml', () => {
  const env = sharedEnvironment();

  it('listens beyond loopback and ships no development keys', () => {
    expect(env.CDP_INGEST_HOST).toBe('0.0.0.0');
    expect(compose).not.toMatch(/dev-(write|admin)-key/);
  });

  it('stops when the operator has not set the keys and the unsubscribe secret', () => {
    expect(() => interpolate(env, {})).toThrow(/^CDP_WRITE_KEY: set CDP_WRITE_KEY/);
    expect(() => interpolate(env, { CDP_WRITE_KEY: 'w'.repeat(32) })).toThrow(/^CDP_ADMIN_KEY/);
    expect(() => interpolate(env, { CDP_WRITE_KEY: 'w'.repeat(32), CDP_ADMIN_KEY: 'a'.repeat(32) })).toThrow(
      /^CDP_UNSUBSCRIBE_SECRET/,
    );
  });

  it("loads with the operator's keys, and refuses the development ones", () => {
    const keys = {
      CDP_WRITE_KEY: 'w'.repeat(32),
      CDP_ADMIN_KEY: 'a'.repeat(32),
      CDP_UNSUBSCRIBE_SECRET: 'u'.repeat(32),
    };
    const cfg = loadConfig(interpolate(env, keys));
    expect(cfg.keys.adminKey).toBe(keys.CDP_ADMIN_KEY);
    expect(cfg.activation.allowLoopback).toBe(false);
    expect(cfg.unsubscribe.publicUrl).toBe('http://localhost:8081');
    expect(() => loadConfig(interpolate(env, { ...keys, CDP_ADMIN_KEY: 'dev-admin-key' }))).toThrow(
      ConfigError,
    );
  });
});
