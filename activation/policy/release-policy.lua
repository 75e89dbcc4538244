-- Gives back what contact-policy.lua counted for a send that finally failed, so a
-- replayed dead letter is not refused by its own earlier attempt. Follows merges to the
-- survivor as contact-policy.lua does (survivor.lua, put in front by check-contact-policy.ts).
-- Key layout: schemas/redis-keys.ts and profiles/apply-event.lua's header. The tag is KEYS[1]
-- less its `:p:<pid>`; the survivor's <tag>:p:<pid> (mergedInto) and its :cap:<channel>,
-- :cap:all and :re; the legacy <tag>:re:<campaign>:<pid> (survivor's and change's id).
-- KEYS: 1 the change's profile hash (<tag>:p:<pid>); ARGV: 1 send key, 2 channel, 3 campaign id,
--       4 profile id
local changePid, campaignId, key = ARGV[4], ARGV[3], ARGV[1]
local tag = string.sub(KEYS[1], 1, #KEYS[1] - #changePid - 3)
local pid = survivor(tag, changePid)
local base = tag .. ':p:' .. pid
redis.call('ZREM', base .. ':cap:' .. ARGV[2], key)
redis.call('ZREM', base .. ':cap:all', key)
local function ours(v) return v and string.sub(v, 1, #key + 1) == key .. '|' end
if ours(redis.call('HGET', base .. ':re', campaignId)) then redis.call('HDEL', base .. ':re', campaignId) end
for _, legacy in ipairs({ tag .. ':re:' .. campaignId .. ':' .. pid, tag .. ':re:' .. campaignId .. ':' .. changePid }) do
  if ours(redis.call('GET', legacy)) then redis.call('DEL', legacy) end
end
return 1
