-- Shared by seed-condition.lua, list-devices.lua and remove-device.lua (put in front of
-- each when it is loaded, profiles/*.ts): merges are followed (at most 64 hops) to the
-- surviving profile's id, as profiles/read.ts's survivorOf does. Key layout: apply-event.lua.
local function survivor(tag, pid)
  for _ = 1, 64 do
    local m = redis.call('HGET', tag .. ':p:' .. pid, 'mergedInto')
    if not m then return pid end
    pid = m
  end
  return pid
end
