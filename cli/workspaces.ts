// `cdp workspaces` and `cdp people`: the query API's workspace and people routes from the
// command line (so every change is authorised and audited as through the API).
//   cdp workspaces create <name> | list | archive <id> | unarchive <id>
//   cdp people add <email> --role owner|marketer|analyst|developer [--name N] --workspace <id>
//   cdp people list --workspace <id>
//   cdp people remove <person id> --workspace <id>
//   cdp people token <person id> --workspace <id>     issues a token (shown once)
// The key is CDP_TOKEN (a person's token) or else CDP_ADMIN_KEY; the API is CDP_QUERY_URL or
// else the configured query host and port. --json prints the API's answers as they are.

export const WORKSPACES_USAGE = `  workspaces create <name>     create a workspace (the deployment's admin key)
  workspaces list              list the workspaces the key may see
  workspaces archive <id>      archive a workspace: its tokens, write keys and BI credentials stop working
  workspaces unarchive <id>    un-archive a workspace (the deployment's admin key)
  people add <email> --role owner|marketer|analyst|developer [--name N] --workspace <id>
  people list --workspace <id>
  people remove <person id> --workspace <id>   (never a workspace's last owner)
  people token <person id> --workspace <id>
                               issue a person's API token (shown once)
                               (these use CDP_QUERY_URL and CDP_TOKEN or CDP_ADMIN_KEY; --json)`;

export class WorkspacesUsageError extends Error {}

export interface WorkspacesCliOptions {
  /** The query API's base URL. */
  url: string;
  /** Bearer key: the admin key or a person's token. */
  key: string;
  out: (line: string) => void;
  fetch?: typeof fetch;
}

interface Parsed {
  positional: string[];
  flags: Map<string, string>;
  json: boolean;
}

function parse(args: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
      else {
        const v = args[++i];
        if (v === undefined) throw new WorkspacesUsageError(`${a} needs a value`);
        flags.set(a.slice(2), v);
      }
    } else positional.push(a);
  }
  return { positional, flags, json };
}

/** Runs `cdp workspaces …` or `cdp people …`; throws WorkspacesUsageError for bad arguments. */
export async function runWorkspacesCli(
  group: 'workspaces' | 'people',
  args: string[],
  o: WorkspacesCliOptions,
): Promise<void> {
  const [sub, ...rest] = args;
  const p = parse(rest);
  const known = new Set(['role', 'name', 'workspace']);
  for (const f of p.flags.keys()) if (!known.has(f)) throw new WorkspacesUsageError(`unknown option --${f}`);
  const doFetch = o.fetch ?? fetch;
  const api = async (method: string, path: string, body?: unknown, workspace?: string) => {
    const headers: Record<string, string> = { authorization: `Bearer ${o.key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (workspace) headers['x-workspace'] = workspace;
    const res = await doFetch(new URL(path, o.url), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    if (!res.ok) {
      const msg = (parsed as { error?: string } | null)?.error ?? text;
      throw new Error(`${method} ${path}: ${res.status} ${msg}`);
    }
    // biome-ignore lint/suspicious/noExplicitAny: answers printed field by field
    return parsed as any;
  };
  const one = (what: string) => {
    const v = p.positional[0];
    if (!v || p.positional.length > 1) throw new WorkspacesUsageError(`cdp ${group} ${sub} <${what}>`);
    return v;
  };
  const ws = () => {
    const v = p.flags.get('workspace');
    if (!v) throw new WorkspacesUsageError(`cdp ${group} ${sub}: --workspace <id> is required`);
    return v;
  };
  const print = (v: unknown, line: () => string) => o.out(p.json ? JSON.stringify(v) : line());

  if (group === 'workspaces') {
    switch (sub) {
      case 'create': {
        const w = await api('POST', '/v1/workspaces', { name: one('name') });
        return print(w, () => `created workspace ${w.id} (${w.name})`);
      }
      case 'list': {
        if (p.positional.length) throw new WorkspacesUsageError('cdp workspaces list');
        const r = await api('GET', '/v1/workspaces');
        if (p.json) return o.out(JSON.stringify(r));
        for (const w of r.workspaces)
          o.out(
            [w.id, w.name, w.archivedAt ? `archived ${w.archivedAt}` : 'active', w.role ?? '']
              .join('\t')
              .trimEnd(),
          );
        return;
      }
      case 'archive': {
        const w = await api('POST', `/v1/workspaces/${encodeURIComponent(one('id'))}/archive`);
        return print(w, () => `archived workspace ${w.id} at ${w.archivedAt}`);
      }
      case 'unarchive': {
        const w = await api('POST', `/v1/workspaces/${encodeURIComponent(one('id'))}/unarchive`);
        return print(w, () => `un-archived workspace ${w.id}`);
      }
    }
    throw new WorkspacesUsageError('cdp workspaces create|list|archive|unarchive');
  }
  switch (sub) {
    case 'add': {
      const role = p.flags.get('role');
      if (!role) throw new WorkspacesUsageError('cdp people add: --role is required');
      const body: Record<string, string> = { email: one('email'), role };
      const name = p.flags.get('name');
      if (name !== undefined) body.name = name;
      const r = await api('POST', '/v1/people', body, ws());
      return print(r, () => `${r.id}\t${r.email}\t${r.role}`);
    }
    case 'list': {
      if (p.positional.length) throw new WorkspacesUsageError('cdp people list --workspace <id>');
      const r = await api('GET', '/v1/people', undefined, ws());
      if (p.json) return o.out(JSON.stringify(r));
      for (const x of r.people) o.out([x.id, x.email, x.role, x.name].join('\t').trimEnd());
      return;
    }
    case 'remove': {
      const id = one('person id');
      await api('DELETE', `/v1/people/${encodeURIComponent(id)}`, undefined, ws());
      return print({ removed: id }, () => `removed ${id} from ${ws()}`);
    }
    case 'token': {
      const r = await api(
        'POST',
        `/v1/people/${encodeURIComponent(one('person id'))}/tokens`,
        undefined,
        ws(),
      );
      if (p.json) return o.out(JSON.stringify(r));
      // the token alone on its line, for scripts
      o.out(r.token);
      o.out(`(token ${r.id}: shown once, keep it secret)`);
      return;
    }
  }
  throw new WorkspacesUsageError('cdp people add|list|remove|token');
}
