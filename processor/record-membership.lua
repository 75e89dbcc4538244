-- Compare-and-set of one (profile, segment) membership epoch. Applies only if the epoch is
-- still the one the decision was based on, so concurrent or repeated evaluations move it
-- once. KEYS[1] = workspace tag; ARGV: profileId, segmentId, fromEpoch, nowMs.
local tag = KEYS[1]
local pid, sid, from, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local segKey = tag .. ':p:' .. pid .. ':seg'
local cur = tonumber(redis.call('HGET', segKey, sid) or '0')
if cur ~= from then return 0 end
-- a profile merged away meanwhile keeps no memberships
if redis.call('HEXISTS', tag .. ':p:' .. pid, 'mergedInto') == 1 then return 0 end
local nextEpoch = from + 1
redis.call('HSET', segKey, sid, nextEpoch)
if nextEpoch % 2 == 1 then
  redis.call('ZADD', tag .. ':s:' .. sid .. ':m', now, pid)
else
  redis.call('ZREM', tag .. ':s:' .. sid .. ':m', pid)
end
return 1
