-- Claim and contact policy for one send, decided and counted in one atomic step (one round
-- trip), so concurrent workers cannot both pass a cap or both claim the send. Re-running it
-- for the same send key is a no-op pass (a retry of a counted send is not counted twice).
-- KEYS: 1 consent hash, 2 suppression set, 3 channel cap log, 4 all-channel cap log,
--       5 re-entry record, 6 send claim
-- ARGV: 1 channel, 2 purpose, 3 send key, 4 now ms, 5 local day start ms, 6 local day end ms,
--       7 cap per channel (0 none), 8 cap across channels (0 none), 9 re-entry mode (every|once|window),
--       10 re-entry window ms, 11 count caps (1|0), 12 cap log retention ms,
--       13 claim owner, 14 claim lease ms, 15 done state ttl s, 16.. suppression members
-- Returns { 'done', state } | { 'busy', pttl } | { 'suppressed', rule } | { 'ok', '' }
local claimed = redis.call('GET', KEYS[6])
if claimed then
  if string.sub(claimed, 1, 5) == 'done:' then return { 'done', string.sub(claimed, 6) } end
  return { 'busy', tostring(redis.call('PTTL', KEYS[6])) }
end
local function suppress(rule)
  redis.call('SET', KEYS[6], 'done:suppressed', 'EX', ARGV[15])
  return { 'suppressed', rule }
end
local function revoked(field)
  local v = redis.call('HGET', KEYS[1], field)
  return v and string.sub(v, 1, 8) == 'revoked:'
end
local channel, purpose, key, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if revoked(channel .. ':' .. purpose) or revoked(channel .. ':*') or revoked('*:' .. purpose) or revoked('*:*') then
  return suppress('consent')
end
for i = 16, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then return suppress('suppression_list') end
end

local mode = ARGV[9]
local sameSend = false
if mode ~= 'every' then
  local last = redis.call('GET', KEYS[5])
  if last then
    local sep = string.find(last, '|', 1, true)
    local lastKey = string.sub(last, 1, sep - 1)
    local lastMs = tonumber(string.sub(last, sep + 1))
    if lastKey == key then
      sameSend = true
    elseif mode == 'once' then
      return suppress('reentry_once')
    elseif now - lastMs < tonumber(ARGV[10]) then
      return suppress('reentry_window')
    end
  end
end

if ARGV[11] == '1' and not redis.call('ZSCORE', KEYS[3], key) then
  local dayStart, dayEnd = ARGV[5], '(' .. ARGV[6]
  local keep = tonumber(ARGV[12])
  local capChannel, capAll = tonumber(ARGV[7]), tonumber(ARGV[8])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - keep)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - keep)
  if capChannel > 0 and redis.call('ZCOUNT', KEYS[3], dayStart, dayEnd) >= capChannel then
    return suppress('cap_channel')
  end
  if capAll > 0 and redis.call('ZCOUNT', KEYS[4], dayStart, dayEnd) >= capAll then
    return suppress('cap_total')
  end
  redis.call('ZADD', KEYS[3], now, key)
  redis.call('ZADD', KEYS[4], now, key)
  redis.call('PEXPIRE', KEYS[3], keep)
  redis.call('PEXPIRE', KEYS[4], keep)
end
if mode ~= 'every' and not sameSend then
  redis.call('SET', KEYS[5], key .. '|' .. now)
end
redis.call('SET', KEYS[6], 'claimed:' .. ARGV[13], 'PX', ARGV[14])
return { 'ok', '' }
