// BI credentials: a user name and a password a BI tool signs in with on the ClickHouse
// HTTP endpoint (query/bi-sql/server.ts). Each belongs to one workspace and reads only its
// rows. Created and revoked through the query API (POST/GET/DELETE /v1/bi-credentials);
// the password is shown once, at creation, and stored only as its SHA-256 (it is 32
// random bytes, so no slow hash is needed against guessing, and a check costs nothing).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from '../../runtime/redis.ts';
import { workspacesArchivedKey } from '../../runtime/workspaces.ts';

export interface BiCredential {
  /** The user name BI tools send (`bi_` and 12 hex digits). */
  user: string;
  workspaceId: string;
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

interface Stored extends BiCredential {
  /** hex SHA-256 of the password */
  secretHash: string;
}

const USER = /^bi_[0-9a-f]{12}$/;
const hash = (password: string) => createHash('sha256').update(password).digest();
const publicPart = ({ secretHash: _, ...rest }: Stored): BiCredential => rest;

export class BiCredentialStore {
  private readonly key: string;
  private readonly archivedKey: string;
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    /** Hash user → credential JSON. */
    this.key = `${prefix}:bi:credentials`;
    /** The archived workspaces (runtime/workspaces.ts): their credentials stop working. */
    this.archivedKey = workspacesArchivedKey(prefix);
  }

  async create(workspaceId: string, name: string, now: Date): Promise<BiCredential & { password: string }> {
    const password = `bip_${randomBytes(32).toString('base64url')}`;
    const rec: Stored = {
      user: `bi_${randomBytes(6).toString('hex')}`,
      workspaceId,
      name,
      createdAt: now.toISOString(),
      revokedAt: null,
      secretHash: hash(password).toString('hex'),
    };
    await this.redis.hset(this.key, rec.user, JSON.stringify(rec));
    return { ...publicPart(rec), password };
  }

  async list(workspaceId: string): Promise<BiCredential[]> {
    const all = await this.redis.hvals(this.key);
    return all
      .map((v) => JSON.parse(v) as Stored)
      .filter((r) => r.workspaceId === workspaceId)
      .map(publicPart)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** [before, after] of the revocation; undefined when the workspace has no such credential. */
  async revoke(
    workspaceId: string,
    user: string,
    now: Date,
  ): Promise<[BiCredential, BiCredential] | undefined> {
    if (!USER.test(user)) return undefined;
    const raw = await this.redis.hget(this.key, user);
    if (!raw) return undefined;
    const rec = JSON.parse(raw) as Stored;
    if (rec.workspaceId !== workspaceId) return undefined;
    if (rec.revokedAt) return [publicPart(rec), publicPart(rec)];
    const after: Stored = { ...rec, revokedAt: now.toISOString() };
    await this.redis.hset(this.key, user, JSON.stringify(after));
    return [publicPart(rec), publicPart(after)];
  }

  /**
   * The workspace of a valid, unrevoked user and password, and whether that workspace is
   * archived (its credentials are refused then); undefined for anything else. The archive is
   * read on every sign-in (each query), so archiving stops a credential at its next query and
   * un-archiving lets it in again.
   */
  async verify(
    user: string,
    password: string,
  ): Promise<{ workspaceId: string; archived: boolean } | undefined> {
    if (!USER.test(user) || !password) return undefined;
    const raw = await this.redis.hget(this.key, user);
    if (!raw) return undefined;
    const rec = JSON.parse(raw) as Stored;
    if (rec.revokedAt) return undefined;
    const want = Buffer.from(rec.secretHash, 'hex');
    const got = hash(password);
    if (!(want.length === got.length && timingSafeEqual(want, got))) return undefined;
    const archived = (await this.redis.sismember(this.archivedKey, rec.workspaceId)) === 1;
    return { workspaceId: rec.workspaceId, archived };
  }
}
