-- Lists a profile's push devices (followed to its merge survivor) for a send, without the
-- tokens on the workspace's suppression list (`device:<token>`). Key layout:
-- schemas/redis-keys.ts and apply-event.lua's header (<tag>:p:<pid>:dev, <tag>:suppress).
-- KEYS[1] = workspace tag; ARGV[1] = profile id. Returns {pid, key, value, key, value, ...}.
local tag = KEYS[1]
local pid = survivor(tag, ARGV[1])
local out = { pid }
local all = redis.call('HGETALL', tag .. ':p:' .. pid .. ':dev')
for i = 1, #all, 2 do
  local token = string.match(all[i + 1], '^%d+|[^|]*|(.*)$')
  if token and redis.call('SISMEMBER', tag .. ':suppress', 'device:' .. token) == 0 then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
