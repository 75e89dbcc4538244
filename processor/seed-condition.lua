-- Seeds one counted condition's event times from history, for profiles that existed
-- before the condition did (a new segment's backfill). Key layout: apply-event.lua.
-- KEYS[1] = workspace tag; ARGV: conditionId, retentionMs, nowMs, then quadruples
-- (userId, anonymousId, messageId, timestampMs); empty ids are skipped.
-- The event resolves to its profile as it would now (userId first, merges followed);
-- ZADD by messageId makes seeding idempotent and safe next to streaming.
-- Returns how many events were added to a profile.
local tag, cond = KEYS[1], ARGV[1]
local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[2])
local touched = {}
local added = 0
local function follow(pid)
  for _ = 1, 64 do
    local m = redis.call('HGET', tag .. ':p:' .. pid, 'mergedInto')
    if not m then return pid end
    pid = m
  end
  return pid
end
for i = 4, #ARGV, 4 do
  local ts = tonumber(ARGV[i + 3])
  if ts > cutoff then
    local pid = nil
    if ARGV[i] ~= '' then pid = redis.call('GET', tag .. ':id:user:' .. ARGV[i]) end
    if not pid and ARGV[i + 1] ~= '' then pid = redis.call('GET', tag .. ':id:anon:' .. ARGV[i + 1]) end
    if pid then
      pid = follow(pid)
      local key = tag .. ':p:' .. pid .. ':c:' .. cond
      local n = redis.call('ZADD', key, ts, ARGV[i + 2])
      -- what rules read changed: a concurrent evaluation of this profile must look again
      if n > 0 then redis.call('HINCRBY', tag .. ':p:' .. pid, 'rev', 1) end
      added = added + n
      if not touched[pid] then
        touched[pid] = true
        redis.call('SADD', tag .. ':p:' .. pid .. ':cs', cond)
        redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. cutoff)
      end
    end
  end
end
return added
