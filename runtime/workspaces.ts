// Workspaces and the people who work in them, stored in Redis (durable like write keys:
// nothing here lives only in memory, so a restart changes nothing).
//
// - A workspace: id, unique name (case-insensitive), created/archived times. Archiving keeps
//   its data; its people's tokens and BI credentials stop working for it and ingest refuses
//   its write keys; un-archiving (the admin key) undoes that.
//   The deployment's configured workspace (CDP_WORKSPACE) is built in: listed, never archived.
// - A person: id, unique email, a role in each workspace they belong to
//   (`<prefix>:{~g}:person:<id>:roles` and `<prefix>:{~g}:ws:<id>:people`, one field per membership, so
//   concurrent changes to different memberships never overwrite each other). A workspace
//   that has an owner keeps one: removing or demoting its last owner is refused, atomically.
// - A person's API token: random, shown once, stored only as its SHA-256; revocable. A token
//   may be limited to some workspaces (an owner of A issuing a token for someone who also
//   belongs to B gets one that works in A only).
import { createHash, randomBytes } from 'node:crypto';
import { globalKeys, globalTag } from '../schemas/redis-keys.ts';
import type { Redis } from './redis.ts';

export const ROLES = ['owner', 'marketer', 'analyst', 'developer'] as const;
export type Role = (typeof ROLES)[number];

export interface Workspace {
  id: string;
  name: string;
  createdAt: string;
  archivedAt: string | null;
  /** The deployment's configured workspace: always there, never archived. */
  builtIn?: boolean;
}

export interface Person {
  id: string;
  email: string;
  name: string;
  createdAt: string;
}

export interface PersonToken {
  id: string;
  personId: string;
  /** Workspaces the token works in; null: every workspace the person belongs to. */
  workspaceIds: string[] | null;
  createdAt: string;
  revokedAt: string | null;
}

/** Who a person token belongs to, with the roles it carries. */
export interface ResolvedPerson {
  person: Person;
  token: PersonToken;
  /** workspace id → role, only workspaces the token works in that are not archived. */
  roles: Map<string, Role>;
}

export const WORKSPACE_NAME_MAX = 100;
export const EMAIL_MAX = 254;
const EMAIL = /^[^\s@<>"'`\\]+@[^\s@<>"'`\\]+\.[^\s@<>"'`\\]+$/;

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

export function normaliseEmail(v: string): string | undefined {
  const e = v.trim().toLowerCase();
  return e.length <= EMAIL_MAX && EMAIL.test(e) ? e : undefined;
}

const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

export class WorkspaceConflict extends Error {}
/** Removing or demoting this person would leave the workspace without an owner. */
export class LastOwner extends WorkspaceConflict {}
/** The person belongs to other workspaces, and only the deployment's admin key adds them to another. */
export class MemberElsewhere extends WorkspaceConflict {}

// creates a workspace atomically: the name is taken and the record written together, or neither
const CREATE_WORKSPACE = `
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1`;

// creates a person atomically, unique by email
const CREATE_PERSON = `
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1`;

// sets (ARGV[3] a role) or removes (ARGV[3] '') a person's membership, atomically refusing
// (-1) the change that would take the workspace's last owner away: concurrent removals of
// two owners run one after the other here, so the second sees the first's result.
// KEYS: the workspace's people, the person's roles (one Redis Cluster slot: both under the
// global tag); ARGV: person id, workspace id, role.
// Returns 1 changed, 0 no such membership (removal only), -1 the last owner.
const SET_MEMBERSHIP = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[4] == '1' and not cur and redis.call('HLEN', KEYS[2]) > 0 then return -2 end
if cur == 'owner' and ARGV[3] ~= 'owner' then
  local owners = 0
  for _, r in ipairs(redis.call('HVALS', KEYS[1])) do
    if r == 'owner' then owners = owners + 1 end
  end
  if owners <= 1 then return -1 end
end
if ARGV[3] == '' then
  if not cur then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1`;

const lastOwner = (workspaceId: string, personId: string, what: string) =>
  new LastOwner(
    `${personId} is the last owner of workspace ${workspaceId} and cannot be ${what}: make someone else an owner first`,
  );

export class WorkspaceStore {
  private readonly k: {
    workspaces: string;
    names: string;
    archived: string;
    writeKeysRevision: string;
    people: string;
    emails: string;
    tokens: string;
    personRoles(id: string): string;
    workspacePeople(id: string): string;
  };

  constructor(
    private readonly redis: Redis,
    prefix: string,
    /** The deployment's configured workspace (CDP_WORKSPACE). */
    readonly builtIn: string,
  ) {
    // under the global hash tag: the scripts and transactions below use several of them
    // (and the write-key revision) at once, one Redis Cluster slot (runtime/redis-migrate.ts
    // moves the untagged names of earlier versions)
    const g = globalTag(prefix);
    this.k = {
      workspaces: `${g}:workspaces`,
      names: `${g}:workspaces:names`,
      archived: workspacesArchivedKey(prefix),
      writeKeysRevision: globalKeys(prefix).writeKeysRevision,
      people: `${g}:people`,
      emails: `${g}:people:emails`,
      tokens: `${g}:people:tokens`,
      personRoles: (id) => `${g}:person:${id}:roles`,
      workspacePeople: (id) => `${g}:ws:${id}:people`,
    };
  }

  private builtInRecord(): Workspace | undefined {
    if (!this.builtIn) return undefined;
    return {
      id: this.builtIn,
      name: this.builtIn,
      createdAt: '1970-01-01T00:00:00.000Z',
      archivedAt: null,
      builtIn: true,
    };
  }

  async createWorkspace(name: string, now: Date): Promise<Workspace> {
    const ws: Workspace = {
      id: `ws_${randomBytes(8).toString('hex')}`,
      name,
      createdAt: now.toISOString(),
      archivedAt: null,
    };
    const key = name.trim().toLowerCase();
    if (this.builtIn && key === this.builtIn.toLowerCase())
      throw new WorkspaceConflict(`a workspace named ${name} exists`);
    const ok = await this.redis.eval(
      CREATE_WORKSPACE,
      2,
      this.k.workspaces,
      this.k.names,
      key,
      ws.id,
      JSON.stringify(ws),
    );
    if (ok !== 1) throw new WorkspaceConflict(`a workspace named ${name} exists`);
    return ws;
  }

  async getWorkspace(id: string): Promise<Workspace | undefined> {
    if (this.builtIn && id === this.builtIn) return this.builtInRecord();
    const raw = await this.redis.hget(this.k.workspaces, id);
    return raw ? (JSON.parse(raw) as Workspace) : undefined;
  }

  async listWorkspaces(): Promise<Workspace[]> {
    const all = Object.values(await this.redis.hgetall(this.k.workspaces)).map(
      (v) => JSON.parse(v) as Workspace,
    );
    all.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    const b = this.builtInRecord();
    return b ? [b, ...all] : all;
  }

  /** Archives a workspace; [before, after], or undefined if unknown. The built-in one refuses. */
  async archiveWorkspace(id: string, now: Date): Promise<[Workspace, Workspace] | undefined> {
    if (this.builtIn && id === this.builtIn)
      throw new WorkspaceConflict('the deployment workspace (CDP_WORKSPACE) cannot be archived');
    const ws = await this.getWorkspace(id);
    if (!ws) return undefined;
    const after = { ...ws, archivedAt: ws.archivedAt ?? now.toISOString() };
    // the write-key revision moves so ingest reloads its keys and drops this workspace's
    await this.redis
      .multi()
      .hset(this.k.workspaces, id, JSON.stringify(after))
      .sadd(this.k.archived, id)
      .incr(this.k.writeKeysRevision)
      .exec();
    return [ws, after];
  }

  /**
   * Un-archives a workspace; [before, after], or undefined if unknown. Its write keys work
   * again once ingest reloads them (the revision moves), its people's tokens and BI
   * credentials at their next request. Not archived: answered as it is.
   */
  async unarchiveWorkspace(id: string): Promise<[Workspace, Workspace] | undefined> {
    const ws = await this.getWorkspace(id);
    if (!ws) return undefined;
    if (ws.builtIn) return [ws, ws];
    const after = { ...ws, archivedAt: null };
    await this.redis
      .multi()
      .hset(this.k.workspaces, id, JSON.stringify(after))
      .srem(this.k.archived, id)
      .incr(this.k.writeKeysRevision)
      .exec();
    return [ws, after];
  }

  async isArchived(id: string): Promise<boolean> {
    return (await this.redis.sismember(this.k.archived, id)) === 1;
  }

  /**
   * Adds a person to a workspace with a role, creating the person if the email is new.
   * Returns the person and whether they were created. Throws LastOwner when this would
   * demote the workspace's only owner. With `onlyOwnPeople` (a workspace owner adding, not the
   * admin key), throws MemberElsewhere when the email is a person of other workspaces who is
   * not in this one: an owner of one workspace may not pull another workspace's people in (it
   * would change how their tokens work and let the owner mint tokens in their name). Checked
   * in the membership script, so a concurrent add cannot slip between check and write.
   */
  async addPerson(
    workspaceId: string,
    email: string,
    name: string,
    role: Role,
    now: Date,
    opts: { onlyOwnPeople?: boolean } = {},
  ): Promise<{ person: Person; created: boolean }> {
    let person = await this.personByEmail(email);
    let created = false;
    if (!person) {
      const p: Person = {
        id: `p_${randomBytes(8).toString('hex')}`,
        email,
        name,
        createdAt: now.toISOString(),
      };
      const ok = await this.redis.eval(
        CREATE_PERSON,
        2,
        this.k.people,
        this.k.emails,
        email,
        p.id,
        JSON.stringify(p),
      );
      if (ok === 1) {
        person = p;
        created = true;
      } else person = await this.personByEmail(email); // a concurrent add won: use theirs
      if (!person) throw new Error(`person ${email} vanished while being added`);
    }
    const res = await this.setMembership(workspaceId, person.id, role, opts.onlyOwnPeople === true);
    if (res === -1) throw lastOwner(workspaceId, person.id, `made ${role}`);
    if (res === -2)
      throw new MemberElsewhere(
        `email: ${email} belongs to a person of another workspace; the deployment's admin key adds people to more than one workspace`,
      );
    return { person, created };
  }

  async personByEmail(email: string): Promise<Person | undefined> {
    const id = await this.redis.hget(this.k.emails, email);
    return id ? this.person(id) : undefined;
  }

  async person(id: string): Promise<Person | undefined> {
    const raw = await this.redis.hget(this.k.people, id);
    return raw ? (JSON.parse(raw) as Person) : undefined;
  }

  async roles(personId: string): Promise<Map<string, Role>> {
    const all = await this.redis.hgetall(this.k.personRoles(personId));
    return new Map(Object.entries(all).filter((e): e is [string, Role] => isRole(e[1])));
  }

  /** People of a workspace with their role there. */
  async listPeople(workspaceId: string): Promise<Array<Person & { role: Role }>> {
    const members = await this.redis.hgetall(this.k.workspacePeople(workspaceId));
    const out: Array<Person & { role: Role }> = [];
    for (const [id, role] of Object.entries(members)) {
      const p = await this.person(id);
      if (p && isRole(role)) out.push({ ...p, role });
    }
    return out.sort((a, b) => a.email.localeCompare(b.email));
  }

  /** A person's role in a workspace; undefined when not a member. */
  async roleIn(workspaceId: string, personId: string): Promise<Role | undefined> {
    const r = await this.redis.hget(this.k.workspacePeople(workspaceId), personId);
    return isRole(r) ? r : undefined;
  }

  /**
   * Removes a person from one workspace; false when they were not in it. Throws LastOwner
   * when they are its only owner.
   */
  async removePerson(workspaceId: string, personId: string): Promise<boolean> {
    const res = await this.setMembership(workspaceId, personId, '');
    if (res === -1) throw lastOwner(workspaceId, personId, 'removed');
    return res === 1;
  }

  /** SET_MEMBERSHIP on the workspace's people and the person's roles. */
  private async setMembership(
    workspaceId: string,
    personId: string,
    role: Role | '',
    onlyOwnPeople = false,
  ): Promise<number> {
    return Number(
      await this.redis.eval(
        SET_MEMBERSHIP,
        2,
        this.k.workspacePeople(workspaceId),
        this.k.personRoles(personId),
        personId,
        workspaceId,
        role,
        onlyOwnPeople ? '1' : '0',
      ),
    );
  }

  /** Issues a token; the secret is returned here only, the store keeps its hash. */
  async issueToken(
    personId: string,
    workspaceIds: string[] | null,
    now: Date,
  ): Promise<{ token: string; record: PersonToken }> {
    const token = `cdp_pt_${randomBytes(24).toString('base64url')}`;
    const record: PersonToken = {
      id: `tok_${randomBytes(6).toString('hex')}`,
      personId,
      workspaceIds,
      createdAt: now.toISOString(),
      revokedAt: null,
    };
    await this.redis.hset(this.k.tokens, tokenHash(token), JSON.stringify(record));
    return { token, record };
  }

  /** A person's tokens (never the secrets), with the hash each is stored under. */
  private async tokenEntries(personId: string): Promise<Array<[string, PersonToken]>> {
    const all = await this.redis.hgetall(this.k.tokens);
    return Object.entries(all)
      .map(([h, v]) => [h, JSON.parse(v) as PersonToken] as [string, PersonToken])
      .filter(([, t]) => t.personId === personId);
  }

  async listTokens(personId: string): Promise<PersonToken[]> {
    return (await this.tokenEntries(personId))
      .map(([, t]) => t)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /**
   * Revokes a person's token by id. `within`: only a token limited to that workspace may be
   * revoked (an owner of one workspace cannot revoke a token that also works elsewhere).
   */
  async revokeToken(
    personId: string,
    tokenId: string,
    now: Date,
    within?: string,
  ): Promise<PersonToken | undefined> {
    const hit = (await this.tokenEntries(personId)).find(([, t]) => t.id === tokenId);
    if (!hit) return undefined;
    const [h, t] = hit;
    if (within && !(t.workspaceIds?.length === 1 && t.workspaceIds[0] === within)) return undefined;
    const after = { ...t, revokedAt: t.revokedAt ?? now.toISOString() };
    await this.redis.hset(this.k.tokens, h, JSON.stringify(after));
    return after;
  }

  /** Resolves a presented token: undefined when unknown, revoked or its person is gone. */
  async resolveToken(token: string): Promise<ResolvedPerson | undefined> {
    if (!token.startsWith('cdp_pt_') || token.length > 200) return undefined;
    const raw = await this.redis.hget(this.k.tokens, tokenHash(token));
    if (!raw) return undefined;
    const rec = JSON.parse(raw) as PersonToken;
    if (rec.revokedAt) return undefined;
    const person = await this.person(rec.personId);
    if (!person) return undefined;
    const roles = await this.roles(person.id);
    const archived = new Set(await this.redis.smembers(this.k.archived));
    for (const ws of [...roles.keys()])
      if (archived.has(ws) || (rec.workspaceIds && !rec.workspaceIds.includes(ws))) roles.delete(ws);
    return { person, token: rec, roles };
  }
}

/** The set of archived workspace ids (read by ingest's write-key watcher too). */
export function workspacesArchivedKey(prefix: string): string {
  return `${globalTag(prefix)}:workspaces:archived`;
}
