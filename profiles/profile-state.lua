-- Shared by apply-event.lua and read-profile.lua (put in front of each when they are
-- loaded, profiles/apply-event.ts): one profile's state as both send it back, what segment
-- rules read. Key layout: see apply-event.lua; `p` is the profile's hash key.
-- Returns firstSeenAt, lastSeenAt (ms; '' when unknown), traits (flat: trait, JSON value),
-- epochs (flat: segment id, epoch), identifiers, counted event times (flat: condition id,
-- its times in ms; the members, messageIds, are not sent: only the times are read), revision.
local function profileState(p)
  local head = redis.call('HMGET', p, 'firstSeenAt', 'lastSeenAt', 'rev')
  local times = {}
  for _, c in ipairs(redis.call('SMEMBERS', p .. ':cs')) do
    local z = redis.call('ZRANGE', p .. ':c:' .. c, 0, -1, 'WITHSCORES')
    local ts = {}
    for i = 2, #z, 2 do ts[#ts + 1] = tonumber(z[i]) end
    times[#times + 1] = c
    times[#times + 1] = ts
  end
  return head[1] or '', head[2] or '', redis.call('HGETALL', p .. ':t'), redis.call('HGETALL', p .. ':seg'),
    redis.call('SMEMBERS', p .. ':ids'), times, head[3] or '0'
end
