-- Reads one profile's state for re-evaluation without an event (timers, backfill): the
-- same shape (and JSON) apply-event.lua returns per event. Key layout: see apply-event.lua.
-- KEYS[1] = workspace tag; ARGV: profileId
local tag, pid = KEYS[1], ARGV[1]
local p = tag .. ':p:' .. pid
local head = redis.call('HMGET', p, 'id', 'firstSeenAt', 'lastSeenAt', 'mergedInto', 'rev')
if not head[1] or head[4] then return cjson.encode({ '', 0, 0, {}, {}, {}, 0 }) end
local out = {}
for _, c in ipairs(redis.call('SMEMBERS', p .. ':cs')) do
  local z = redis.call('ZRANGE', p .. ':c:' .. c, 0, -1, 'WITHSCORES')
  local ts = {}
  for i = 2, #z, 2 do ts[#ts + 1] = tonumber(z[i]) end
  out[#out + 1] = c
  out[#out + 1] = ts
end
return cjson.encode({
  pid, 0, 0, {}, {}, {}, 0, head[2] or '', head[3] or '',
  redis.call('HGETALL', p .. ':t'), redis.call('HGETALL', p .. ':seg'), redis.call('SMEMBERS', p .. ':ids'), out,
  head[5] or '0',
})
