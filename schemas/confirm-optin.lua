-- Confirms a double opt-in grant (schemas/double-opt-in.ts), atomically: the record must
-- exist, match the token's channel and purpose, be unconfirmed and unexpired; the consent is
-- written `granted` with source `link` on the record's profile followed through merges (not
-- on an erased one), and the record is marked confirmed in the same step. So a link works
-- once: a second POST (a replay, or two at once) finds it confirmed and changes nothing.
-- Key layout: schemas/redis-keys.ts, profiles/apply-event.lua's header and
-- schemas/double-opt-in.ts. The tag is KEYS[1] less its `:p:<pid>:optin`; the survivor's
-- <tag>:p:<pid> (mergedInto, via survivor.lua, which double-opt-in.ts puts in front of this
-- script) and its :consent; <tag>:erased.
-- KEYS: 1 the profile's optin hash (<tag>:p:<pid>:optin)
-- ARGV: 1 record id, 2 profile id, 3 channel, 4 purpose, 5 now ms, 6 ip, 7 user agent
-- Returns { 'confirmed', survivor, record JSON } | { 'already', record JSON, logged 0|1 }
--       | { 'gone' } | { 'expired' } | { 'erased' }
local rid, pid = ARGV[1], ARGV[2]
local raw = redis.call('HGET', KEYS[1], rid)
if not raw then return { 'gone' } end
local rec = cjson.decode(raw)
if rec.profileId ~= pid or rec.channel ~= ARGV[3] or rec.purpose ~= ARGV[4] then return { 'gone' } end
if rec.confirmedAt then
  return { 'already', raw, redis.call('HEXISTS', KEYS[1], 'logged:' .. rid) == 1 and '1' or '0' }
end
local now = tonumber(ARGV[5])
if now > tonumber(rec.expiresAt) then return { 'expired' } end
local tag = string.sub(KEYS[1], 1, #KEYS[1] - #pid - 9)
local target = survivor(tag, pid)
if redis.call('ZSCORE', tag .. ':erased', redis.sha1hex('profile:' .. target)) then return { 'erased' } end
redis.call('HSET', tag .. ':p:' .. target .. ':consent', rec.channel .. ':' .. rec.purpose,
  'granted:' .. ARGV[5] .. ':link')
-- numbers as strings: cjson would write a millisecond time in exponent form
rec.confirmedAt = ARGV[5]
rec.confirmIp = ARGV[6]
rec.confirmUserAgent = ARGV[7]
rec.confirmedOn = target
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], rid, out)
return { 'confirmed', target, out }
