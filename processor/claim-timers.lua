-- Claims due re-evaluation timers with a lease, and returns expired leases (a claimer
-- that died) to the due set first. Re-evaluation is idempotent, so a timer fired twice
-- is harmless; one is never lost.
-- KEYS[1] = timers, KEYS[2] = leases; ARGV: nowMs, leaseUntilMs, limit
local now, leaseUntil, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)) do
  redis.call('ZADD', KEYS[1], 'LT', now, m)
  redis.call('ZREM', KEYS[2], m)
end
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZADD', KEYS[2], leaseUntil, m)
end
return due
