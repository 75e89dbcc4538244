-- Compare-and-set of one profile's membership epochs: the transitions one evaluation of the
-- profile decided. Each (segment, fromEpoch) applies only if the epoch is still the one the
-- decision was based on, so concurrent or repeated evaluations move it once.
-- The profile's revision (field `rev` of its hash, bumped by everything that changes what
-- rules read: an event applied, a condition seeded, memberships recorded) says whether the
-- decision was made on the profile as it still is. If it was, nothing else changed the
-- profile in between and the caller has nothing to evaluate again; if not, a concurrent
-- batch (another partition) may have decided on the state from before this record, and the
-- caller evaluates the profile again on a fresh read (see processor/pipeline/record-memberships.ts).
-- KEYS[1] = workspace tag; ARGV: profileId, the revision the decision read, nowMs, then
-- (segmentId, fromEpoch) pairs.
-- Returns one 1/0 per pair (applied or not), then 1 if the revision was still the one read.
local tag = KEYS[1]
local pid, readRev, now = ARGV[1], ARGV[2], ARGV[3]
local p = tag .. ':p:' .. pid
local n = (#ARGV - 3) / 2
local out = {}
local head = redis.call('HMGET', p, 'id', 'mergedInto', 'rev')
-- a profile merged away or erased meanwhile keeps no memberships
if not head[1] or head[2] then
  for i = 1, n + 1 do out[i] = 0 end
  return out
end
local segKey = p .. ':seg'
local moved = false
for i = 1, n do
  local sid, from = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  local cur = tonumber(redis.call('HGET', segKey, sid) or '0')
  if cur == from then
    local nextEpoch = from + 1
    redis.call('HSET', segKey, sid, nextEpoch)
    if nextEpoch % 2 == 1 then
      redis.call('ZADD', tag .. ':s:' .. sid .. ':m', now, pid)
    else
      redis.call('ZREM', tag .. ':s:' .. sid .. ':m', pid)
    end
    out[i] = 1
    moved = true
  else
    out[i] = 0
  end
end
if moved then redis.call('HINCRBY', p, 'rev', 1) end
out[n + 1] = (head[3] or '0') == readRev and 1 or 0
return out
