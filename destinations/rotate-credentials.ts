// `cdp secrets rotate` for destinations: a built-in's token (HubSpot, Salesforce, an ads
// audience) and a webhook's signing secret are sealed with CDP_SECRETS_KEY inside the
// definition (schemas/destination.ts `credentials`, `http.sealedSecret`, bound to the
// workspace and destination id). A rotation seals again with the current key every one
// another key sealed, so that once CDP_SECRETS_KEY_PREVIOUS is removed the destinations still
// open them; a signing secret still stored in clear (saved before CDP_SECRETS_KEY was set) is
// sealed too.
//
// Each definition is replaced only if it is still what was read (one script: compare, write,
// move the definitions revision so running services reload): a PUT meanwhile (sealed with the
// current key already) is left alone. Nothing else in the definition changes (not its
// version: the secrets are the same).
import type { Redis } from '../runtime/redis.ts';
import { type Keyring, open, seal, UnreadableSecret } from '../runtime/secrets-key.ts';
import { type DestinationDefinition, destinationAad, destinationSecretAad } from '../schemas/destination.ts';
import { globalKeys } from '../schemas/redis-keys.ts';

// KEYS: the definitions hash and its revision (one hash tag: one slot on a cluster)
const REPLACE_IF_SAME = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1`;

export interface DestinationReencryption {
  /** Tokens and signing secrets sealed again (or sealed for the first time) with the current key. */
  reencrypted: number;
  /** Those already under the current key (or changed by a PUT meanwhile). */
  current: number;
  /** Definitions with a secret no key at hand opens: left as they are. */
  unreadable: Array<{ workspaceId: string; destinationId: string; error: string }>;
}

export async function reencryptDestinationCredentials(
  redis: Redis,
  prefix: string,
  ring: Keyring,
): Promise<DestinationReencryption> {
  const cur = ring.current;
  if (!cur) throw new Error('CDP_SECRETS_KEY is not set: nothing to re-encrypt with');
  const keys = globalKeys(prefix);
  const raw = await redis.hgetall(keys.destinations);
  const out: DestinationReencryption = { reencrypted: 0, current: 0, unreadable: [] };
  for (const [field, text] of Object.entries(raw)) {
    let def: DestinationDefinition;
    try {
      def = JSON.parse(text) as DestinationDefinition;
    } catch {
      const [workspaceId = '', destinationId = ''] = field.split('/');
      out.unreadable.push({ workspaceId, destinationId, error: 'the definition is not JSON' });
      continue;
    }
    const what = { workspaceId: def.workspaceId, destinationId: def.id };
    let next = def;
    let changed = 0;
    let unchanged = 0;
    try {
      // a built-in's token
      if (def.credentials) {
        if (def.credentials.kid === cur.id) unchanged++;
        else {
          const aad = destinationAad(def.workspaceId, def.id);
          next = { ...next, credentials: seal(ring, open(ring, def.credentials, aad), aad) };
          changed++;
        }
      }
      // a webhook's signing secret: sealed with another key, or still in clear (stored before
      // CDP_SECRETS_KEY was set): sealed with the current one
      if (def.type === 'http') {
        const aad = destinationSecretAad(def.workspaceId, def.id);
        const sealed = def.http.sealedSecret;
        if (sealed?.kid === cur.id) unchanged++;
        else if (sealed || def.http.secret) {
          const plain = sealed ? open(ring, sealed, aad) : def.http.secret;
          next = { ...next, http: { ...next.http, secret: '', sealedSecret: seal(ring, plain, aad) } };
          changed++;
        }
      }
    } catch (err) {
      if (!(err instanceof UnreadableSecret)) throw err;
      out.unreadable.push({ ...what, error: err.message });
      continue;
    }
    if (changed === 0) {
      out.current += unchanged;
      continue;
    }
    const done = await redis.eval(
      REPLACE_IF_SAME,
      2,
      keys.destinations,
      keys.revision,
      field,
      text,
      JSON.stringify(next),
    );
    // changed meanwhile: a PUT sealed it with the current key already
    if (Number(done) === 1) {
      out.reencrypted += changed;
      out.current += unchanged;
    } else out.current += changed + unchanged;
  }
  return out;
}
