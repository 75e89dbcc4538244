-- GDPR erasure of one profile's Redis state, atomically: its identifiers stop resolving,
-- its traits, identity set, memberships, computed traits and score counters are deleted, it leaves every segment.
-- Key layout: schemas/redis-keys.ts. KEYS[1] = workspace tag; ARGV[1] = profile id.
-- Returns the identifiers it held ("kind:value"), for erasing history elsewhere.
local tag, pid = KEYS[1], ARGV[1]
local p = tag .. ':p:' .. pid
local ids = redis.call('SMEMBERS', p .. ':ids')
for _, m in ipairs(ids) do
  local sep = string.find(m, ':', 1, true)
  local key = tag .. ':id:' .. string.sub(m, 1, sep - 1) .. ':' .. string.sub(m, sep + 1)
  if redis.call('GET', key) == pid then redis.call('DEL', key) end
end
local segs = redis.call('HGETALL', p .. ':seg')
for i = 1, #segs, 2 do redis.call('ZREM', tag .. ':s:' .. segs[i] .. ':m', pid) end
for _, c in ipairs(redis.call('SMEMBERS', p .. ':cs')) do redis.call('DEL', p .. ':c:' .. c) end
for _, a in ipairs(redis.call('SMEMBERS', p .. ':ags')) do redis.call('DEL', p .. ':ag:' .. a) end
if redis.call('EXISTS', p) == 1 and not redis.call('HGET', p, 'mergedInto') then
  redis.call('HINCRBY', tag .. ':stats', 'profiles', -1)
end
redis.call('DEL', p, p .. ':t', p .. ':tt', p .. ':ids', p .. ':seg', p .. ':cs', p .. ':merged', p .. ':groups',
  p .. ':ags', p .. ':sc')
return ids
