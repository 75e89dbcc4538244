// The compose stack listens on 0.0.0.0: it must ship no development keys, make compose
// stop when the operator's keys are missing, and load with the operator's keys. It runs every
// service `cdp start` knows (cli/services.ts), each in its container as the others are, and
// infra/k8s has a Deployment for each.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVICE_NAMES, type ServiceName } from '../cli/services.ts';
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

/** The entries under `services:` (two-space names), each with its lines as written. */
function composeServices(): Map<string, string[]> {
  const block = /^services:\n((?:(?: {2}.*)?\n)+)/m.exec(compose)?.[1];
  if (!block) throw new Error('no `services:` block in docker-compose.yml');
  const out = new Map<string, string[]>();
  let lines: string[] = [];
  for (const line of block.split('\n')) {
    const name = /^ {2}([a-z0-9-]+):$/.exec(line)?.[1];
    if (name) {
      lines = [];
      out.set(name, lines);
    } else if (/^ {4}\S/.test(line)) lines.push(line.trim());
  }
  return out;
}

/**
 * Services of cli/services.ts that compose does not run, with the reason (none today: a new
 * service must be added to docker-compose.yml, or here with why not).
 */
const NOT_IN_COMPOSE: Partial<Record<ServiceName, string>> = {};

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

  it('runs every service of `cdp start` (cli/services.ts) in a container of its own, as the others', () => {
    const services = composeServices();
    for (const name of SERVICE_NAMES) {
      if (NOT_IN_COMPOSE[name]) {
        expect(services.has(name), `${name} is excluded: ${NOT_IN_COMPOSE[name]}`).toBe(false);
        continue;
      }
      const lines = services.get(name);
      expect(lines, `service ${name} in docker-compose.yml`).toBeDefined();
      // the shared image, environment and depends_on, and the command that picks the service
      expect(lines, name).toContain('<<: *service');
      expect(lines, name).toContain(`command: ["start", "${name}"]`);
    }
    // and no container starts a service cdp does not know
    for (const [name, lines] of services)
      for (const l of lines) {
        const started = /^command: \["start", "([^"]+)"\]$/.exec(l)?.[1];
        if (started) expect(SERVICE_NAMES, `${name} starts ${started}`).toContain(started);
      }
    expect(services.get('migrate')).toContain('command: ["migrate"]');
  });
});

describe('infra/k8s', () => {
  const dir = new URL('./k8s/', import.meta.url);
  const manifests = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => readFileSync(new URL(f, dir), 'utf8'));
  const kustomization = readFileSync(new URL('kustomization.yaml', dir), 'utf8');

  it('has a Deployment per service of `cdp start`, listed in the kustomization', () => {
    for (const name of SERVICE_NAMES) {
      const file = manifests.filter(
        (m) => m.includes('kind: Deployment') && m.includes(`  name: cdp-${name}\n`),
      );
      expect(file, `Deployment cdp-${name}`).toHaveLength(1);
      expect(file[0], name).toContain(`args: ["start", "${name}"]`);
      expect(kustomization, name).toContain(`  - ${name}.yaml\n`);
    }
  });
});
