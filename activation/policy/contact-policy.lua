-- Claim and contact policy for one send, decided and counted in one atomic step (one round
-- trip), so concurrent workers cannot both pass a cap or both claim the send. Re-running it
-- for the same send key is a no-op pass (a retry of a counted send is not counted twice).
-- The change names the profile as it was when the change was decided; a merge since then
-- moved its contact state (profiles/apply-event.lua, mergeContact), so the profile is
-- followed to its survivor here, in the same atomic step, and the survivor's consent, caps
-- and re-entry records decide.
-- A campaign with a send rate takes its turn last, once every rule has let the send pass:
-- virtual scheduling (GCRA without burst) over the campaign's rate hash, shared by every
-- worker, on two schedules. The queue: the send's slot is max(now, tat) and tat moves on by
-- the interval; a slot in a later millisecond delays the send to it (nothing claimed or
-- counted; the caller parks it and it is decided again at its slot, holding the slot: `gen`
-- names the reservation's rate). The sends: one whose queue slot has come goes at
-- max(now, sat), and sat moves on by the interval, so sends that come back late together
-- (a worker that fell behind) still go one interval apart: within `max wait` the claim is
-- taken and the caller waits that long before sending, beyond it the send is delayed to
-- that time holding it (kind 's': it takes no slot again unless it comes back late).
-- A newer campaign version with another rate starts a new `gen` at now: every send not yet
-- out (held ones too) then takes a slot at the new rate; an older version's caller (a
-- worker that has not seen the change yet) is paced at the newer rate. A send suppressed
-- at its slot (consent revoked meanwhile, a cap) does not give the slot back: the rate is
-- a ceiling, and slots handed out cannot be moved.
-- Key layout: schemas/redis-keys.ts and profiles/apply-event.lua's header. The tag is KEYS[1]
-- less its `:p:<pid>`; the survivor's <tag>:p:<pid> (mergedInto, via survivor.lua, which
-- check-contact-policy.ts puts in front of this script) and its :consent, :re, :cap:<channel>
-- and :cap:all; <tag>:erased, <tag>:settings and the legacy <tag>:re:<campaign>:<pid>.
-- KEYS: 1 the change's profile hash (<tag>:p:<pid>), 2 suppression set (<tag>:suppress),
--       3 send claim (<tag>:send:<send key>), 4 the campaign's rate hash (<tag>:rate:<campaign>)
-- ARGV: 1 channel, 2 purpose, 3 send key, 4 now ms, 5 local day start ms, 6 local day end ms,
--       7 cap per channel (0 none), 8 cap across channels (0 none), 9 re-entry mode (every|once|window),
--       10 re-entry window ms, 11 count caps (1|0), 12 cap log retention ms,
--       13 claim owner, 14 claim lease ms, 15 done state ttl s, 16 campaign id, 17 profile id,
--       18 ms between sends (0: no rate), 19 campaign version, 20 gen of the slot the send
--       holds ('' none), 21 that slot (ms), 22 its kind (q: queue, s: send), 23 max wait ms,
--       24.. suppression members
-- Returns { 'done', state } | { 'busy', pttl } | { 'suppressed', rule } | { 'ok', wait ms, '', '', regen }
--       | { 'rate', slot ms, gen, kind, regen } (regen '1': this call started a new rate)
local claimed = redis.call('GET', KEYS[3])
if claimed then
  if string.sub(claimed, 1, 5) == 'done:' then return { 'done', string.sub(claimed, 6) } end
  return { 'busy', tostring(redis.call('PTTL', KEYS[3])) }
end
local changePid, campaignId = ARGV[17], ARGV[16]
local tag = string.sub(KEYS[1], 1, #KEYS[1] - #changePid - 3)
local pid = survivor(tag, changePid)
local base = tag .. ':p:' .. pid
local consentKey, reKey = base .. ':consent', base .. ':re'
local capChannel, capAllKey = base .. ':cap:' .. ARGV[1], base .. ':cap:all'

local function suppress(rule)
  redis.call('SET', KEYS[3], 'done:suppressed', 'EX', ARGV[15])
  return { 'suppressed', rule }
end
-- an erased person (a retry or a delayed send still on its way): its consent and caps went
-- with it, so nothing below could stop the send; the erasure tombstoned every profile id it
-- erased (profiles/erase-profile.lua, schemas/erasure.ts)
local erased = tag .. ':erased'
if redis.call('ZSCORE', erased, redis.sha1hex('profile:' .. changePid))
  or (pid ~= changePid and redis.call('ZSCORE', erased, redis.sha1hex('profile:' .. pid))) then
  return suppress('erased')
end
local channel, purpose, key, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
-- the four consent records that can apply to this send, most specific first, in one read
local consent = redis.call('HMGET', consentKey, channel .. ':' .. purpose, channel .. ':*', '*:' .. purpose, '*:*')
local function state(v) return v and string.sub(v, 1, 8) end
for i = 1, 4 do
  if state(consent[i]) == 'revoked:' then return suppress('consent') end
end
-- a grant waiting for its double opt-in confirmation (query/double-opt-in.ts) is not consent
if state(consent[1]) == 'pending:' or state(consent[3]) == 'pending:' then
  return suppress('consent_pending')
end
-- a purpose the workspace wants confirmed (PUT /v1/settings doubleOptIn) is opt-in: only an
-- explicit grant of it (a confirmation, or the API) lets a send pass
local optIn = redis.call('HGET', tag .. ':settings', 'optInPurposes')
if optIn and string.find(optIn, ',' .. purpose .. ',', 1, true)
  and state(consent[1]) ~= 'granted:' and state(consent[3]) ~= 'granted:' then
  return suppress('consent_unconfirmed')
end
if redis.call('SISMEMBER', KEYS[2], 'profile:' .. pid) == 1 then return suppress('suppression_list') end
for i = 24, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then return suppress('suppression_list') end
end

local mode = ARGV[9]
local sameSend = false
if mode ~= 'every' then
  -- records written before re-entry moved into the profile's hash sit in <tag>:re:<campaign>:<pid>
  local last = redis.call('HGET', reKey, campaignId)
    or redis.call('GET', tag .. ':re:' .. campaignId .. ':' .. pid)
    or (pid ~= changePid and redis.call('GET', tag .. ':re:' .. campaignId .. ':' .. changePid))
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

local count = ARGV[11] == '1' and not redis.call('ZSCORE', capChannel, key)
local keep = tonumber(ARGV[12])
if count then
  local dayStart, dayEnd = ARGV[5], '(' .. ARGV[6]
  local capCh, capAll = tonumber(ARGV[7]), tonumber(ARGV[8])
  redis.call('ZREMRANGEBYSCORE', capChannel, '-inf', now - keep)
  redis.call('ZREMRANGEBYSCORE', capAllKey, '-inf', now - keep)
  if capCh > 0 and redis.call('ZCOUNT', capChannel, dayStart, dayEnd) >= capCh then
    return suppress('cap_channel')
  end
  if capAll > 0 and redis.call('ZCOUNT', capAllKey, dayStart, dayEnd) >= capAll then
    return suppress('cap_total')
  end
end

local wait = 0
local regen = '0'
local LATE_MS = 250
if ARGV[18] ~= '0' then
  local st = redis.call('HMGET', KEYS[4], 'tat', 'iv', 'ver', 'gen', 'sat')
  local tat, iv, ver, gen = tonumber(st[1]) or 0, st[2], tonumber(st[3]) or -1, tonumber(st[4]) or 0
  local sat = tonumber(st[5]) or 0
  local myVer = tonumber(ARGV[19])
  if myVer > ver then
    if iv ~= ARGV[18] then
      gen = gen + 1
      regen = '1'
      tat = now
    end
    iv, ver = ARGV[18], myVer
  end
  local step = tonumber(iv)
  local held = ARGV[20] ~= '' and tonumber(ARGV[20]) == gen
  local slot, kind
  if held then
    slot, kind = tonumber(ARGV[21]), ARGV[22]
  else
    slot, kind = math.max(now, tat), 'q'
    tat = slot + step
  end
  -- to the millisecond: a slot within this one has come (a send is never parked for less);
  -- its turn in the queue come, or its send slot missed by more than LATE_MS (the worker
  -- fell behind again), the send schedule paces it
  if slot < now + 1 and (kind == 'q' or now - slot > LATE_MS) then
    slot = math.max(now, sat)
    sat = slot + step
    kind = 's'
    if slot < now + 1 + tonumber(ARGV[23]) then wait = math.max(0, math.ceil(slot - now)) end
  end
  local function fmt(x) return string.format('%.17g', x) end
  redis.call('HSET', KEYS[4], 'tat', fmt(tat), 'sat', fmt(sat), 'iv', iv, 'ver', ver, 'gen', gen)
  -- kept while reservations are ahead, then a day (a deleted campaign's hash goes by itself)
  redis.call('PEXPIRE', KEYS[4], math.floor(math.max(0, tat - now, sat - now)) + 86400000)
  if slot >= now + 1 and wait == 0 then return { 'rate', fmt(slot), tostring(gen), kind, regen } end
end

if count then
  redis.call('ZADD', capChannel, now, key)
  redis.call('ZADD', capAllKey, now, key)
  redis.call('PEXPIRE', capChannel, keep)
  redis.call('PEXPIRE', capAllKey, keep)
end
if mode ~= 'every' and not sameSend then
  redis.call('HSET', reKey, campaignId, key .. '|' .. now)
end
redis.call('SET', KEYS[3], 'claimed:' .. ARGV[13], 'PX', tonumber(ARGV[14]) + wait)
return { 'ok', tostring(wait), '', '', regen }
