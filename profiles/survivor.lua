-- Put in front of each script that follows merges when it is loaded (withSurvivor,
-- profiles/survivor.ts), shared by: seed-condition.lua, list-devices.lua and
-- remove-device.lua (profiles/*.ts), activation/policy/contact-policy.lua and
-- release-policy.lua (check-contact-policy.ts), schemas/write-consent.lua (consent-log.ts)
-- and schemas/confirm-optin.lua (double-opt-in.ts), erase-profile.lua (erase.ts).
-- apply-event.lua (the hot path) keeps its own loop. Merges are followed (at most 64 hops) to the
-- surviving profile's id, as profiles/read.ts's survivorOf does.
-- Key layout: schemas/redis-keys.ts and apply-event.lua's header (<tag>:p:<pid> mergedInto).
local function survivor(tag, pid)
  for _ = 1, 64 do
    local m = redis.call('HGET', tag .. ':p:' .. pid, 'mergedInto')
    if not m then return pid end
    pid = m
  end
  return pid
end
