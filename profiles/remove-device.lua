-- Removes a push token a provider called gone from a profile (followed to its merge
-- survivor), only if the device still has that token (one that registered a new token
-- since keeps it); the device and token owners go with it when they still point here.
-- Key layout: schemas/redis-keys.ts and apply-event.lua's header (<tag>:p:<pid>:dev,
-- <tag>:dev:<deviceKey>, <tag>:devtok:<token>).
-- KEYS[1] = workspace tag; ARGV: profile id, device key, token. Returns 1 if it was removed.
local tag = KEYS[1]
local pid = survivor(tag, ARGV[1])
local dkey = tag .. ':p:' .. pid .. ':dev'
local cur = redis.call('HGET', dkey, ARGV[2])
if not cur or string.match(cur, '^%d+|[^|]*|(.*)$') ~= ARGV[3] then return 0 end
redis.call('HDEL', dkey, ARGV[2])
local owner = tag .. ':dev:' .. ARGV[2]
if redis.call('GET', owner) == pid then redis.call('DEL', owner) end
local tk = tag .. ':devtok:' .. ARGV[3]
if redis.call('GET', tk) == ARGV[2] then redis.call('DEL', tk) end
return 1
