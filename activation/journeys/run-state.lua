-- A person's run through a journey, moved one step at a time by compare-and-set, so a step
-- runs once however many workers or redeliveries race for it, and the per-node counts move
-- in the same atomic step (they are exact, not sampled).
-- KEYS: 1 run hash (<tag>:jr:<journeyId>:<profileId>), 2 stats hash (<tag>:js:<journeyId>),
--   3 the workspace's erasure tombstones (<tag>:erased)
-- Run hash: run (number of runs so far), v (journey version), node ('' once ended),
--   state (active|ended), enteredAt, nodeAt (ms), endedAt, end (why it ended), occ (the
--   time entry occurrence of the last run, '' for other entries), `arm:<node>` (the way the
--   run left a split, branch or wait-until: `variant:1`, `holdout`, `yes`, `met`, ...),
--   conv (when the run's conversion was counted for its arms).
-- Stats hash: entered, refused, `now:<node>`, `passed:<node>`, `exited:<node>`,
--   `converted:<node>`, `ended:<reason>`, `arm:<node>:<arm>` (runs that left that way),
--   `conv:<node>:<arm>` (of those, converted within the goal's window of entering),
--   convertedAfterExit (conversions of runs that had ended: completed, exited, held out).
-- ARGV[1] = op:
--   enter, version, startNode, nowMs, reEntry (never|after_exit|window), windowMs, occurrence,
--     the profile's tombstone member (an erased person enters nothing: { 'erased', 0 })
--     → { 'entered', run } | { 'busy', run } (a run is active) | { 'refused', run } (re-entry rule)
--       | { 'again', run } (this person entered at this occurrence already: a broadcast or a
--       schedule tick enters each member once, however often a crash repeats its page)
--   move, run, fromNode, toNode ('' to end), nowMs, endReason (when ending), arm, windowMs
--     → { 'moved', run } | { 'stale', run } (the run is elsewhere: someone else moved it)
--     A move ending as `converted` within windowMs of entering counts for the run's arms.
--   path, run, nowMs, then fromNode, toNode, endReason, arm per move → { 'moved', how many }
--     (several moves at once, in order, up to the first stale one)
--   migrate, run, fromVersion, fromNode, toVersion, toNode, nowMs → { 'moved', run } |
--     { 'stale', run }: an active run of fromVersion at fromNode goes on in toVersion at
--     toNode (its time there kept when the node is the same, else from now)
--   convert, nowMs, windowMs → { 'counted', run } | { 'no', run }: the goal reached by a
--     person whose run has ended (completed, exited, held out) within windowMs of entering
--     it, counted once for the run's arms: a holdout's conversions are measured as the
--     treatment's are, so the lift compares like with like
--   peek → { state, run, node, v, nodeAt, enteredAt }
local op = ARGV[1]
local run = tonumber(redis.call('HGET', KEYS[1], 'run') or '0')
local state = redis.call('HGET', KEYS[1], 'state')

if op == 'peek' then
  local f = redis.call('HMGET', KEYS[1], 'node', 'v', 'nodeAt', 'enteredAt')
  return { state or '', tostring(run), f[1] or '', f[2] or '', f[3] or '', f[4] or '' }
end

if op == 'enter' then
  local version, start, now, mode, occ = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[7] or ''
  if ARGV[8] and redis.call('ZSCORE', KEYS[3], ARGV[8]) then return { 'erased', tostring(run) } end
  if occ ~= '' and redis.call('HGET', KEYS[1], 'occ') == occ then return { 'again', tostring(run) } end
  if state == 'active' then return { 'busy', tostring(run) } end
  if run > 0 then
    if mode == 'never' then
      redis.call('HINCRBY', KEYS[2], 'refused', 1)
      return { 'refused', tostring(run) }
    end
    if mode == 'window' and now - tonumber(redis.call('HGET', KEYS[1], 'enteredAt') or '0') < tonumber(ARGV[6]) then
      redis.call('HINCRBY', KEYS[2], 'refused', 1)
      return { 'refused', tostring(run) }
    end
  end
  run = run + 1
  -- the previous run's arms and conversion are not this one's
  local old = {}
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if f == 'conv' or string.sub(f, 1, 4) == 'arm:' then old[#old + 1] = f end
  end
  if #old > 0 then redis.call('HDEL', KEYS[1], unpack(old)) end
  redis.call('HSET', KEYS[1], 'run', run, 'v', version, 'node', start, 'state', 'active',
    'enteredAt', now, 'nodeAt', now, 'endedAt', '', 'end', '', 'occ', occ)
  redis.call('HINCRBY', KEYS[2], 'entered', 1)
  redis.call('HINCRBY', KEYS[2], 'now:' .. start, 1)
  return { 'entered', tostring(run) }
end

-- a conversion counted once for every arm the run took
local function countArms(now)
  redis.call('HSET', KEYS[1], 'conv', now)
  local f = redis.call('HGETALL', KEYS[1])
  for i = 1, #f, 2 do
    if string.sub(f[i], 1, 4) == 'arm:' then
      redis.call('HINCRBY', KEYS[2], 'conv:' .. string.sub(f[i], 5) .. ':' .. f[i + 1], 1)
    end
  end
end
local function inWindow(now, windowMs)
  local entered = tonumber(redis.call('HGET', KEYS[1], 'enteredAt') or '0')
  return tonumber(now) - entered <= tonumber(windowMs or '0')
end

-- one step: the compare-and-set of (run, node) and the counts; false when the run is elsewhere
local function step(want, from, to, now, reason, arm, windowMs)
  if state ~= 'active' or run ~= want or redis.call('HGET', KEYS[1], 'node') ~= from then return false end
  if arm and arm ~= '' then
    redis.call('HSET', KEYS[1], 'arm:' .. from, arm)
    redis.call('HINCRBY', KEYS[2], 'arm:' .. from .. ':' .. arm, 1)
  end
  redis.call('HINCRBY', KEYS[2], 'now:' .. from, -1)
  if to ~= '' then
    redis.call('HINCRBY', KEYS[2], 'passed:' .. from, 1)
    redis.call('HINCRBY', KEYS[2], 'now:' .. to, 1)
    redis.call('HSET', KEYS[1], 'node', to, 'nodeAt', now)
  else
    if reason == 'converted' then
      redis.call('HINCRBY', KEYS[2], 'converted:' .. from, 1)
      if inWindow(now, windowMs) then countArms(now) end
    elseif reason == 'completed' then
      redis.call('HINCRBY', KEYS[2], 'passed:' .. from, 1)
    else
      redis.call('HINCRBY', KEYS[2], 'exited:' .. from, 1)
    end
    redis.call('HINCRBY', KEYS[2], 'ended:' .. reason, 1)
    redis.call('HSET', KEYS[1], 'node', '', 'state', 'ended', 'endedAt', now, 'end', reason)
    state = 'ended'
  end
  return true
end

if op == 'move' then
  if not step(tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]) then
    return { 'stale', tostring(run) }
  end
  return { 'moved', tostring(run) }
end

-- path, run, nowMs, then (fromNode, toNode, endReason, arm) per move: the moves of one advance
-- in one atomic step, stopping at the first that finds the run elsewhere → { 'moved', count }
if op == 'path' then
  local want, now, done = tonumber(ARGV[2]), ARGV[3], 0
  for i = 4, #ARGV - 3, 4 do
    if not step(want, ARGV[i], ARGV[i + 1], now, ARGV[i + 2], ARGV[i + 3]) then break end
    done = done + 1
  end
  return { 'moved', tostring(done) }
end

if op == 'migrate' then
  local want, fromV, fromNode, toV, toNode, now = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  local f = redis.call('HMGET', KEYS[1], 'v', 'node')
  if state ~= 'active' or run ~= want or f[1] ~= fromV or f[2] ~= fromNode then return { 'stale', tostring(run) } end
  redis.call('HSET', KEYS[1], 'v', toV, 'node', toNode)
  if toNode ~= fromNode then
    redis.call('HSET', KEYS[1], 'nodeAt', now)
    redis.call('HINCRBY', KEYS[2], 'now:' .. fromNode, -1)
    redis.call('HINCRBY', KEYS[2], 'now:' .. toNode, 1)
  end
  return { 'moved', tostring(run) }
end

if op == 'convert' then
  local why = redis.call('HGET', KEYS[1], 'end')
  if state ~= 'ended' or why == 'converted' or why == 'merged' or why == 'erased'
    or redis.call('HEXISTS', KEYS[1], 'conv') == 1 or not inWindow(ARGV[2], ARGV[3]) then
    return { 'no', tostring(run) }
  end
  countArms(ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'convertedAfterExit', 1)
  return { 'counted', tostring(run) }
end
return redis.error_reply('unknown op ' .. tostring(op))
