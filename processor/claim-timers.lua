-- Claims due re-evaluation timers with a lease, and returns expired leases (a claimer
-- that died) to the due set first. Re-evaluation is idempotent, so a timer fired twice
-- is harmless; one is never lost.
-- KEYS[1] = timers, KEYS[2] = leases; ARGV: nowMs, leaseUntilMs, limit
-- Returns member, due time, member, due time, ... (a returned lease is due again now).
local now, leaseUntil, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)) do
  redis.call('ZADD', KEYS[1], 'LT', now, m)
  redis.call('ZREM', KEYS[2], m)
end
-- the due members with their due times (ms): member, time, member, time, ...
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], leaseUntil, due[i])
end
return due
