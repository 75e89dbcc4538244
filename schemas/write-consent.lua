-- Writes consent decisions for a person, following merges to the surviving profile in the
-- same atomic step (a merge moves consent to the survivor; writing to a merged-away id would
-- be lost). In `newer` mode a field is written only when the decision is newer than the one
-- kept (replaying the consent log after a rebuild); `set` writes as given.
-- Key layout: schemas/redis-keys.ts and profiles/apply-event.lua's header. The tag is KEYS[1]
-- less its `:p:<pid>`; the survivor's <tag>:p:<pid> (mergedInto, via survivor.lua, which
-- schemas/consent-log.ts puts in front of this script), its :consent and :ids; <tag>:erased.
-- KEYS: 1 the profile hash (<tag>:p:<pid>)
-- ARGV: 1 profile id, 2 mode (set|newer), 3.. field, value pairs (schemas/contact.ts)
-- Returns { survivor id, the survivor's identifiers (kind:value)... }, or {} for an erased profile
local tag = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1] - 3)
local pid = survivor(tag, ARGV[1])
-- an erased profile (profiles/erase-profile.lua tombstones it) gets nothing written again: an
-- unsubscribe link minted before the erasure would otherwise bring back data about them
if redis.call('ZSCORE', tag .. ':erased', redis.sha1hex('profile:' .. pid)) then return {} end
local key = tag .. ':p:' .. pid .. ':consent'
local function ms(v) return tonumber(string.match(v or '', '^%a+:(%d+)') or '-1') end
for i = 3, #ARGV, 2 do
  if ARGV[2] == 'set' or ms(ARGV[i + 1]) > ms(redis.call('HGET', key, ARGV[i])) then
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
local out = { pid }
for _, m in ipairs(redis.call('SMEMBERS', tag .. ':p:' .. pid .. ':ids')) do out[#out + 1] = m end
return out
