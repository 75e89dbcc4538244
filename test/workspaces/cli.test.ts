// `cdp workspaces` and `cdp people` (cli/workspaces.ts) against the query API on real Redis
// and chDB: what the admin key creates from the command line works through the API, the API's
// refusals come back as errors, and bad arguments are usage errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorkspacesCli, WorkspacesUsageError } from '../../cli/workspaces.ts';
import { createQueryApp } from '../../query/app.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { WorkspaceStore } from '../../runtime/workspaces.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import { migrate } from '../../schemas/migrations.ts';
import { testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let clients: Clients;
let app: ReturnType<typeof createQueryApp>;

beforeAll(async () => {
  cfg = testConfig();
  const log = testLogger(cfg);
  clients = createClients(cfg, log);
  const ch = await clients.clickhouse();
  await migrate(ch);
  const redis = clients.redis();
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, cfg.redis.prefix),
    writeKeys: new WriteKeyStore(redis, cfg.redis.prefix),
    workspaces: new WorkspaceStore(redis, cfg.redis.prefix, cfg.keys.workspace),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k: string) => (k === cfg.keys.adminKey ? cfg.keys.workspace : undefined),
    unsubscribeSecret: cfg.unsubscribe.secret,
    log,
  });
});
afterAll(async () => {
  await clients?.close();
});

async function cdp(group: 'workspaces' | 'people', args: string[], key = cfg.keys.adminKey) {
  const lines: string[] = [];
  await runWorkspacesCli(group, args, {
    url: 'http://query.test',
    key,
    out: (l) => lines.push(l),
    fetch: ((input: string | URL, init?: RequestInit) => app.request(String(input), init)) as typeof fetch,
  });
  return lines;
}

describe('cdp workspaces / people', () => {
  it('creates a workspace, adds an owner, issues their token, lists and archives', async () => {
    const name = uniqueId('Cli shop ');
    const [created] = await cdp('workspaces', ['create', name, '--json']);
    const ws = JSON.parse(created!) as { id: string; name: string };
    expect(ws.name).toBe(name);
    await expect(cdp('workspaces', ['create', name])).rejects.toThrow(/409 a workspace named/);

    const [added] = await cdp('people', [
      'add',
      'Owner@Example.com',
      '--role',
      'owner',
      '--name',
      'O',
      '--workspace',
      ws.id,
    ]);
    const [personId, email, role] = added!.split('\t');
    expect([email, role]).toEqual(['owner@example.com', 'owner']);
    const token = (await cdp('people', ['token', personId!, `--workspace=${ws.id}`]))[0]!;
    expect(token).toMatch(/^cdp_pt_/);

    // the person's token lists only their workspace, with their role
    expect(await cdp('workspaces', ['list'], token)).toEqual([`${ws.id}\t${name}\tactive\towner`]);
    expect(await cdp('people', ['list', '--workspace', ws.id], token)).toEqual([
      `${personId}\towner@example.com\towner\tO`,
    ]);
    // and may not create workspaces
    await expect(cdp('workspaces', ['create', uniqueId('x')], token)).rejects.toThrow(/403/);

    const all = await cdp('workspaces', ['list']);
    expect(all[0]).toMatch(new RegExp(`^${cfg.keys.workspace}\\t`));
    expect(all.some((l) => l.startsWith(`${ws.id}\t`))).toBe(true);
    const [archived] = await cdp('workspaces', ['archive', ws.id]);
    expect(archived).toMatch(new RegExp(`^archived workspace ${ws.id} at `));
    await expect(cdp('people', ['list', '--workspace', ws.id], token)).rejects.toThrow(/403/);
    // the owners' token may not bring it back; the admin key does
    await expect(cdp('workspaces', ['unarchive', ws.id], token)).rejects.toThrow(/403/);
    expect(await cdp('workspaces', ['unarchive', ws.id])).toEqual([`un-archived workspace ${ws.id}`]);
    expect(await cdp('people', ['list', '--workspace', ws.id], token)).toHaveLength(1);
    // the last owner stays until another owner is there
    await expect(cdp('people', ['remove', personId!, '--workspace', ws.id])).rejects.toThrow(
      /409 .* is the last owner of workspace .* make someone else an owner first/,
    );
    await cdp('people', ['add', 'second@example.com', '--role', 'owner', '--workspace', ws.id]);
    await expect(cdp('people', ['remove', personId!, '--workspace', ws.id])).resolves.toEqual([
      `removed ${personId} from ${ws.id}`,
    ]);
  });

  it('refuses bad arguments as usage errors, before any request', async () => {
    for (const [group, args] of [
      ['workspaces', []],
      ['workspaces', ['create']],
      ['workspaces', ['create', 'a', 'b']],
      ['workspaces', ['drop', 'x']],
      ['workspaces', ['unarchive']],
      ['people', ['add', 'a@b.co', '--workspace', 'ws']],
      ['people', ['add', 'a@b.co', '--role', 'owner']],
      ['people', ['list', '--workspace']],
      ['people', ['token', 'p_1', '--workspace', 'ws', '--force', 'yes']],
    ] as const) {
      await expect(cdp(group, [...args]), `${group} ${args.join(' ')}`).rejects.toBeInstanceOf(
        WorkspacesUsageError,
      );
    }
    // what the API refuses comes back with its message
    await expect(
      cdp('people', ['add', 'not-an-email', '--role', 'owner', '--workspace', cfg.keys.workspace]),
    ).rejects.toThrow(/400 email: not an email address/);
  });
});
