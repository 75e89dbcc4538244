-- Reads one profile's state for re-evaluation without an event (timers, backfill): the
-- same shape (and JSON) apply-event.lua returns per event. Key layout: see apply-event.lua.
-- KEYS[1] = workspace tag; ARGV: profileId
local tag, pid = KEYS[1], ARGV[1]
local p = tag .. ':p:' .. pid
local head = redis.call('HMGET', p, 'id', 'mergedInto')
if not head[1] or head[2] then return cjson.encode({ '', 0, 0, {}, {}, {}, 0, {} }) end
local out = { pid, 0, 0, {}, {}, {}, 0, {} }
out[9], out[10], out[11], out[12], out[13], out[14], out[15] = profileState(p)
return cjson.encode(out)
