-- Seeds one counted condition's event times from history, for profiles that existed
-- before the condition did (a new segment's backfill, processor/seed-from-history.ts).
-- Key layout: schemas/redis-keys.ts and apply-event.lua's header (<tag>:id:<kind>:<value>,
-- <tag>:p:<pid>, its :c:<conditionId> times and :cs condition set).
-- KEYS[1] = workspace tag; ARGV: conditionId, retentionMs, nowMs, then quadruples
-- (userId, anonymousId, messageId, timestampMs); empty ids are skipped.
-- The event resolves to its profile as it would now (userId first, merges followed);
-- ZADD by messageId makes seeding idempotent and safe next to streaming.
-- Returns how many events were added to a profile.
local tag, cond = KEYS[1], ARGV[1]
local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[2])
local touched = {}
local added = 0
for i = 4, #ARGV, 4 do
  local ts = tonumber(ARGV[i + 3])
  if ts > cutoff then
    local pid = nil
    if ARGV[i] ~= '' then pid = redis.call('GET', tag .. ':id:user:' .. ARGV[i]) end
    if not pid and ARGV[i + 1] ~= '' then pid = redis.call('GET', tag .. ':id:anon:' .. ARGV[i + 1]) end
    if pid then
      pid = survivor(tag, pid)
      local p = tag .. ':p:' .. pid
      local key = p .. ':c:' .. cond
      local n = redis.call('ZADD', key, ts, ARGV[i + 2])
      -- what rules read changed: a concurrent evaluation of this profile must look again
      if n > 0 then redis.call('HINCRBY', p, 'rev', 1) end
      added = added + n
      if not touched[pid] then
        touched[pid] = true
        redis.call('SADD', p .. ':cs', cond)
        redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. cutoff)
      end
    end
  end
end
return added
