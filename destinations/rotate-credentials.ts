// `cdp secrets rotate` for destinations: a built-in's token (HubSpot, Salesforce, an ads
// audience) is sealed with CDP_SECRETS_KEY inside its definition (schemas/destination.ts
// `credentials`, bound to the workspace and destination id). A rotation seals again with
// the current key every token another key sealed, so that once CDP_SECRETS_KEY_PREVIOUS is
// removed the destinations still open their tokens.
//
// Each definition is replaced only if it is still what was read (one script: compare, write,
// move the definitions revision so running services reload): a PUT meanwhile (sealed with the
// current key already) is left alone. Nothing else in the definition changes (not its
// version: the token is the same). A webhook's signing secret is not sealed and not touched.
import type { Redis } from '../runtime/redis.ts';
import { type Keyring, open, seal, UnreadableSecret } from '../runtime/secrets-key.ts';
import { type DestinationDefinition, destinationAad } from '../schemas/destination.ts';
import { globalKeys } from '../schemas/redis-keys.ts';

// KEYS: the definitions hash and its revision (one hash tag: one slot on a cluster)
const REPLACE_IF_SAME = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1`;

export interface DestinationReencryption {
  /** Tokens sealed again with the current key. */
  reencrypted: number;
  /** Tokens already under the current key (or changed by a PUT meanwhile). */
  current: number;
  /** Tokens no key at hand opens: left as they are. */
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
    if (!def.credentials) continue;
    if (def.credentials.kid === cur.id) {
      out.current++;
      continue;
    }
    const aad = destinationAad(def.workspaceId, def.id);
    let plain: string;
    try {
      plain = open(ring, def.credentials, aad);
    } catch (err) {
      if (!(err instanceof UnreadableSecret)) throw err;
      out.unreadable.push({ workspaceId: def.workspaceId, destinationId: def.id, error: err.message });
      continue;
    }
    const next = JSON.stringify({ ...def, credentials: seal(ring, plain, aad) });
    const done = await redis.eval(REPLACE_IF_SAME, 2, keys.destinations, keys.revision, field, text, next);
    if (Number(done) === 1) out.reencrypted++;
    else out.current++;
  }
  return out;
}
