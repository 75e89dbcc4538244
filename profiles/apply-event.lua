-- Applies events to a workspace's identity graph and profiles, in order, atomically
-- (one call per batch chunk of a workspace: the per-call cost is paid once, not per event).
-- Key layout (schemas/redis-keys.ts), all under the workspace hash tag KEYS[1]:
--   <tag>:dedup:<messageId>        seen marker, with TTL
--   <tag>:id:<kind>:<value>        identifier -> profile id
--   <tag>:p:<pid>                  hash: id, firstSeenAt, lastSeenAt (ms), mergedInto, rev (bumped
--                                  by every change rules can read; record-membership.lua),
--                                  tb (bytes of its traits: names + JSON values; absent: count
--                                  again), claimed ('1': its email and external ids came from
--                                  client keys only, so they do not make it a known person)
--   <tag>:settings                 hash: clientKeys = restricted|trusted (the workspace's choice;
--                                  absent: the deployment default in the options)
--   <tag>:p:<pid>:t / :tt          trait -> JSON value / trait -> timestamp (ms) of that value
--   <tag>:p:<pid>:ids              set of "<kind>:<value>"
--   <tag>:p:<pid>:seg              segment id -> membership epoch (odd = member)
--   <tag>:s:<segmentId>:m          sorted set of member profile ids
--   <tag>:p:<pid>:c:<conditionId>  sorted set of the times (ms) of events matching a
--                                  counted condition (member = messageId), trimmed to
--                                  the longest window that reads it
--   <tag>:p:<pid>:cs               set of the condition ids the profile has times for
--   <tag>:p:<pid>:ag:<storageId>   hash of one computed trait's aggregate (schemas/computed-trait.ts):
--                                  _k = kind, _o = oldest bucket kept, bucket start (ms) -> count,
--                                  sum, min or max; for last: v = JSON value, t = its event time
--   <tag>:p:<pid>:ags              set of the storage ids the profile has aggregates for
--   <tag>:p:<pid>:sc               hash: lead-score counter id -> "<count> <asOf ms> <halfLife ms>"
--   <tag>:p:<pid>:merged           set of the profile ids merged into this one (transitively)
--   <tag>:p:<pid>:consent / :re    contact state (consent hash, re-entry hash by campaign) and
--   <tag>:p:<pid>:cap:<channel>    cap logs: written by activation and the query API, moved
--                                  by merges (mergeContact)
--   <tag>:idv                      counter, bumped by every identity-graph change
--   <tag>:stats                    hash: profiles (live, not merged away)
--   <tag>:p:<pid>:groups           set of the accounts (groupIds) the profile belongs to
--   <tag>:p:<pid>:dev              hash of its push devices: device key (`i:<device id>`, or
--                                  `t:<token>` without an id) -> `<last seen ms>|<type>|<token>`,
--                                  at most opts.maxDevices (the least recently seen dropped)
--   <tag>:dev:<deviceKey>          the profile a push device belongs to (one at a time: a
--                                  device seen on another profile moves there)
--   <tag>:devtok:<token>           the device key a push token belongs to (one at a time)
--   <tag>:acct:<groupId>:t / :tt   account traits (JSON) / their times, last write wins
-- ARGV: dedupTtlSeconds, maxIdentities, nowMs, readState ('all': the state of every
--       profile; 'changed': only of those whose identity this call changed, for a workspace
--       with nothing to evaluate), then the events as one JSON array (one argument, decoded
--       here by cjson: thousands of separate arguments cost the client more than the call),
--       each [messageId, eventTimeMs, newProfileId,
--         conditions {"add":[[id, retentionMs] of the conditions this event matches],
--           "agg":[[storageId, kind, value, bucketMs, windowMs] of the computed traits it updates],
--           "dec":[[counterId, halfLifeMs] of the lead-score counters it adds 1 to]} (each optional),
--         [kind, value, kind, value, ...] identifiers, [trait, jsonValue, ...] traits,
--         groupId ('' unless a group call), [trait, jsonValue, ...] group traits,
--         'c' for an event sent with a client (public) write key, else '',
--         [op, trait, jsonArg, ...] trait operations (incr | add | remove; see below),
--         and only for an event with `context.device.token`: [deviceKey, token ('' to
--         unregister), type], or ['!', what] for a device refused by the caller (limited)],
--       then options as JSON: {clientKeys, protected: [trait names], maxTraits, maxTraitBytes,
--       maxDevices}.
-- Returns one result per event, as a JSON array (see the end of the script): what it did, and for the last
-- event of each profile the profile's state after it; its counted times are those of the
-- conditions the profile has (a profile's own set, not the workspace's: the cost follows
-- the person, not the number of segments). Element 7 is the identity version: the new
-- counter value when this event changed the graph (created, linked, merged), the current
-- value for a replay (so a caller that crashed before publishing can publish again), else 0.
-- Element 8 lists what a client key was refused (links `kind:value`, traits `trait:name`);
-- element 6 (limited) also names traits refused past the per-profile trait bounds.
-- A replayed messageId changes nothing; the profile it resolved to is still returned so
-- the caller can re-evaluate (re-evaluation is idempotent).
local tag = KEYS[1]
local ttl = tonumber(ARGV[1])
local maxIds = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local readAll = ARGV[4] == 'all'
local events = cjson.decode(ARGV[5])
local nEvents = #events
local opts = ARGV[6] and cjson.decode(ARGV[6]) or {}
local maxTraits = tonumber(opts.maxTraits or 1000)
local maxTraitBytes = tonumber(opts.maxTraitBytes or 1048576)
local maxDevices = tonumber(opts.maxDevices or 20)
local protectedTrait = {}
for _, k in ipairs(opts.protected or {}) do protectedTrait[k] = true end
-- a client key is limited unless the workspace (or, without its choice, the deployment) trusts them
local restrictClients =
  (redis.call('HGET', tag .. ':settings', 'clientKeys') or opts.clientKeys or 'restricted') ~= 'trusted'

local function pkey(pid) return tag .. ':p:' .. pid end

local function follow(pid)
  for _ = 1, 64 do
    local m = redis.call('HGET', pkey(pid), 'mergedInto')
    if not m then return pid end
    pid = m
  end
  return pid
end

-- Whether a min or max bucket holding `cur` (nil: empty) takes the value `v`.
local function replaces(kind, v, cur)
  if not cur then return true end
  if kind == 'min' then return tonumber(v) < tonumber(cur) end
  return tonumber(v) > tonumber(cur)
end

-- Computed traits: the event's value goes into the bucket of its event time (one bucket
-- when all time); an event already outside the window is not kept. Windowed hashes expire
-- when their newest bucket leaves the window, and buckets past it are trimmed once the
-- oldest is stale by a quarter window, so memory stays within about 1.25 windows.
local function addAggregate(pid, a, ts)
  local id, kind, val, B, W = a[1], a[2], a[3], tonumber(a[4]), tonumber(a[5])
  local key = pkey(pid) .. ':ag:' .. id
  local newest
  if kind == 'last' then
    if W > 0 and ts <= now - W then return end
    local prev = redis.call('HGET', key, 't')
    -- the later event time wins, whatever the arrival order (a tie: the later arrival)
    if not prev or ts >= tonumber(prev) then
      redis.call('HSET', key, '_k', kind, 'v', val, 't', ts)
      newest = ts
    else
      newest = tonumber(prev)
    end
  else
    local b = 0
    if B > 0 then b = ts - ts % B end
    if W > 0 and b + B <= now - W then return end
    local f = string.format('%.0f', b)
    if kind == 'count' then
      redis.call('HINCRBY', key, f, 1)
    elseif kind == 'sum' then
      redis.call('HINCRBYFLOAT', key, f, val)
    else
      local cur = redis.call('HGET', key, f)
      if replaces(kind, val, cur) then
        redis.call('HSET', key, f, val)
      end
    end
    redis.call('HSET', key, '_k', kind)
    if W > 0 then
      local o = redis.call('HGET', key, '_o')
      o = o and tonumber(o) or b
      if b < o then o = b end
      if o + B <= now - W - math.max(W / 4, B) then
        o = b
        for _, k in ipairs(redis.call('HKEYS', key)) do
          if string.sub(k, 1, 1) ~= '_' then
            local kb = tonumber(k)
            if kb + B <= now - W then redis.call('HDEL', key, k) elseif kb < o then o = kb end
          end
        end
      end
      redis.call('HSET', key, '_o', string.format('%.0f', o))
      newest = b + B
    end
  end
  redis.call('SADD', pkey(pid) .. ':ags', id)
  if W > 0 then
    local ttl = newest + W - now
    if ttl > 0 and redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, math.ceil(ttl)) end
  end
end

local function parseCounter(raw)
  local c, t, h = string.match(raw, '^(%S+) (%S+) (%S+)$')
  return tonumber(c), tonumber(t), tonumber(h)
end

local function formatCounter(c, t, h)
  return string.format('%.17g %.0f %.0f', c, t, h)
end

-- Lead-score counters: count * 2^(-(now - asOf) / halfLife) when read; an event adds 1 at
-- its event time (never later than now), in any arrival order.
local function addCounter(pid, d, ts)
  local id, h = d[1], tonumber(d[2])
  local key = pkey(pid) .. ':sc'
  local t = math.min(ts, now)
  local c, at = 1, t
  local raw = redis.call('HGET', key, id)
  if raw then
    local pc, pt = parseCounter(raw)
    if h == 0 then
      c, at = pc + 1, math.max(pt, t)
    elseif t >= pt then
      c = pc * 2 ^ (-(t - pt) / h) + 1
    else
      c, at = pc + 2 ^ (-(pt - t) / h), pt
    end
  end
  redis.call('HSET', key, id, formatCounter(c, at, h))
end

-- Merges: counts and sums add per bucket, min of mins, max of maxes, last by event time,
-- counters decayed to the later asOf and added; the later expiry is kept.
local function mergeAggregate(srcKey, dstKey)
  local f = redis.call('HGETALL', srcKey)
  if #f == 0 then return end
  local h = {}
  for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
  local kind = h['_k']
  local dttl = redis.call('PTTL', dstKey)
  if kind == 'last' then
    local dt = redis.call('HGET', dstKey, 't')
    if h['t'] and (not dt or tonumber(h['t']) > tonumber(dt)) then
      redis.call('HSET', dstKey, '_k', kind, 'v', h['v'], 't', h['t'])
    end
  else
    for k, v in pairs(h) do
      if string.sub(k, 1, 1) ~= '_' then
        if kind == 'count' then
          redis.call('HINCRBY', dstKey, k, v)
        elseif kind == 'sum' then
          redis.call('HINCRBYFLOAT', dstKey, k, v)
        else
          local cur = redis.call('HGET', dstKey, k)
          if replaces(kind, v, cur) then
            redis.call('HSET', dstKey, k, v)
          end
        end
      end
    end
    local o, d = h['_o'], redis.call('HGET', dstKey, '_o')
    if o and (not d or tonumber(o) < tonumber(d)) then redis.call('HSET', dstKey, '_o', o) end
    redis.call('HSET', dstKey, '_k', kind)
  end
  local sttl = redis.call('PTTL', srcKey)
  if sttl > 0 and (dttl == -2 or (dttl > 0 and sttl > dttl)) then redis.call('PEXPIRE', dstKey, sttl) end
  redis.call('DEL', srcKey)
end

local function mergeCounters(srcKey, dstKey)
  local f = redis.call('HGETALL', srcKey)
  for i = 1, #f, 2 do
    local raw = redis.call('HGET', dstKey, f[i])
    if not raw then
      redis.call('HSET', dstKey, f[i], f[i + 1])
    else
      local sc, st, h = parseCounter(f[i + 1])
      local dc, dt = parseCounter(raw)
      local at = math.max(st, dt)
      local c = sc + dc
      if h > 0 then c = sc * 2 ^ (-(at - st) / h) + dc * 2 ^ (-(at - dt) / h) end
      redis.call('HSET', dstKey, f[i], formatCounter(c, at, h))
    end
  end
end

-- Contact state follows the person (activation/policy/contact-policy.lua reads it from the
-- survivor): consent keeps the newer decision per channel:purpose (a revocation wins a tie),
-- cap logs and re-entry records are joined (the later send per campaign), and a suppression
-- of the merged-away profile id suppresses the survivor too. Values: consent
-- `granted|revoked:<ms>:<source>`, re-entry `<sendKey>|<ms>`.
local CAP_CHANNELS = { 'all', 'webhook', 'email', 'sms', 'push' }
local CAP_RETENTION_MS = 176400000 -- two days and an hour, as check-contact-policy.ts keeps them
local function mergeContact(src, dst)
  local function newer(a, b, sep)
    if not b then return true end
    local ta = tonumber(string.match(a, sep == ':' and '^%a+:(%d+)' or '|(%d+)$') or '0')
    local tb = tonumber(string.match(b, sep == ':' and '^%a+:(%d+)' or '|(%d+)$') or '0')
    if ta ~= tb then return ta > tb end
    return sep == ':' and string.sub(a, 1, 8) == 'revoked:'
  end
  for _, suffix in ipairs({ ':consent', ':re' }) do
    local sep = suffix == ':consent' and ':' or '|'
    local f = redis.call('HGETALL', pkey(src) .. suffix)
    for i = 1, #f, 2 do
      if newer(f[i + 1], redis.call('HGET', pkey(dst) .. suffix, f[i]), sep) then
        redis.call('HSET', pkey(dst) .. suffix, f[i], f[i + 1])
      end
    end
  end
  for _, ch in ipairs(CAP_CHANNELS) do
    local s, d = pkey(src) .. ':cap:' .. ch, pkey(dst) .. ':cap:' .. ch
    if redis.call('EXISTS', s) == 1 then
      redis.call('ZUNIONSTORE', d, 2, d, s, 'AGGREGATE', 'MAX')
      redis.call('PEXPIRE', d, CAP_RETENTION_MS)
      redis.call('DEL', s)
    end
  end
  local sup = tag .. ':suppress'
  if redis.call('SISMEMBER', sup, 'profile:' .. src) == 1 then redis.call('SADD', sup, 'profile:' .. dst) end
end

-- Push devices. An entry's last-seen time (event time) orders them: a later registration of a
-- device wins, an older event arriving late changes nothing. A token belongs to one device
-- (<tag>:devtok:<token> -> device key) and a device to one profile (<tag>:dev:<key> -> pid).
local function deviceSeen(v) return tonumber(string.match(v, '^(%d+)|') or '0') end
local function tokenOf(v) return string.match(v, '^%d+|[^|]*|(.*)$') end

-- Forgets that a token is a device's, if it still is.
local function forgetToken(token, key)
  if not token then return end
  local tk = tag .. ':devtok:' .. token
  if redis.call('GET', tk) == key then redis.call('DEL', tk) end
end

-- Drops a device from a profile, with its owner and token records if they still name it.
local function dropDevice(pid, key)
  local dkey = pkey(pid) .. ':dev'
  local v = redis.call('HGET', dkey, key)
  if v then
    forgetToken(tokenOf(v), key)
    redis.call('HDEL', dkey, key)
  end
  local ikey = tag .. ':dev:' .. key
  if redis.call('GET', ikey) == pid then redis.call('DEL', ikey) end
end

-- Keeps a profile within maxDevices, dropping the least recently seen.
local function trimDevices(pid)
  local dkey = pkey(pid) .. ':dev'
  local n = redis.call('HLEN', dkey)
  if n <= maxDevices then return end
  local all = redis.call('HGETALL', dkey)
  local list = {}
  for i = 1, #all, 2 do list[#list + 1] = { all[i], deviceSeen(all[i + 1]) } end
  table.sort(list, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[1] < b[1]
  end)
  for i = 1, n - maxDevices do dropDevice(pid, list[i][1]) end
end

-- An event's device (see ARGV): registered on the event's profile, or unregistered (token '').
-- The device leaves the profile that had it, and so does another device entry holding the
-- same token (registered without an id, or under an id since changed), so a shared phone
-- stops reaching the person who used it before. Returns what it refused, for `limited`, or nil.
local function applyDevice(pid, dev, ts)
  if dev[1] == '!' then return 'device:' .. dev[2] end
  local key, token, typ = dev[1], dev[2], dev[3]
  local ikey = tag .. ':dev:' .. key
  -- what is there now (checked before anything changes: a later registration stands)
  local owner, cur = redis.call('GET', ikey), nil
  if owner then
    owner = follow(owner)
    cur = redis.call('HGET', pkey(owner) .. ':dev', key)
    if cur and deviceSeen(cur) > ts then return nil end
  end
  local other, otherOwner = nil, nil
  if token ~= '' then
    other = redis.call('GET', tag .. ':devtok:' .. token)
    if other == key then other = nil end
    if other then
      otherOwner = redis.call('GET', tag .. ':dev:' .. other)
      if otherOwner then otherOwner = follow(otherOwner) end
      local ov = otherOwner and redis.call('HGET', pkey(otherOwner) .. ':dev', other)
      if ov and tokenOf(ov) == token then
        if deviceSeen(ov) > ts then return nil end
      else
        other = nil -- a stale token record: overwritten below
      end
    end
  end
  if other then dropDevice(otherOwner, other) end
  if owner and cur then
    if owner ~= pid or token == '' then
      dropDevice(owner, key)
    elseif tokenOf(cur) ~= token then
      forgetToken(tokenOf(cur), key) -- the device's earlier token
    end
  elseif owner then
    redis.call('DEL', ikey)
  end
  if token == '' then return nil end
  -- (an event time before 1970 counts as 0: the stored time is digits only)
  redis.call('HSET', pkey(pid) .. ':dev', key, string.format('%.0f', math.max(ts, 0)) .. '|' .. typ .. '|' .. token)
  redis.call('SET', ikey, pid)
  redis.call('SET', tag .. ':devtok:' .. token, key)
  trimDevices(pid)
  return nil
end

-- Merges: the survivor has both profiles' devices (the later registration of one device
-- wins), within maxDevices.
local function mergeDevices(src, dst)
  local f = redis.call('HGETALL', pkey(src) .. ':dev')
  if #f == 0 then return end
  for i = 1, #f, 2 do
    local k, v = f[i], f[i + 1]
    local cur = redis.call('HGET', pkey(dst) .. ':dev', k)
    local keep, lose = v, cur
    if cur and deviceSeen(v) <= deviceSeen(cur) then keep, lose = cur, v end
    if lose and tokenOf(lose) ~= tokenOf(keep) then forgetToken(tokenOf(lose), k) end
    if keep == v then redis.call('HSET', pkey(dst) .. ':dev', k, v) end
    redis.call('SET', tag .. ':dev:' .. k, dst)
  end
  redis.call('DEL', pkey(src) .. ':dev')
  trimDevices(dst)
end

local function userIdOf(pid)
  for _, m in ipairs(redis.call('SMEMBERS', pkey(pid) .. ':ids')) do
    if string.sub(m, 1, 5) == 'user:' then return string.sub(m, 6) end
  end
  return nil
end

-- What a profile's identifiers are worth: whether it has a userId, and its email and
-- external ids: 'none', 'claimed' (from client keys only) or 'verified' (a server key linked
-- or sent one; profiles from before key kinds count as verified). A known person has a
-- userId or verified ids; only server keys may join it with another profile.
local function idTrust(pid)
  local user, strong = false, false
  for _, m in ipairs(redis.call('SMEMBERS', pkey(pid) .. ':ids')) do
    if string.sub(m, 1, 5) == 'user:' then
      user = true
    elseif string.sub(m, 1, 6) == 'email:' or string.sub(m, 1, 4) == 'ext.' then
      strong = true
    end
  end
  if not strong then return user, 'none' end
  if redis.call('HGET', pkey(pid), 'claimed') == '1' then return user, 'claimed' end
  return user, 'verified'
end
local function isKnown(pid)
  local user, ids = idTrust(pid)
  return user or ids == 'verified'
end
local function isAnonymousOnly(pid)
  local user, ids = idTrust(pid)
  return not user and ids == 'none'
end
-- a userId, email or external id: the identifiers that make a person known
local function isStrong(kind) return kind == 'user' or kind == 'email' or string.sub(kind, 1, 4) == 'ext.' end

-- Bytes of a profile's traits (names + JSON values), kept in its `tb` field; counted once
-- when absent (profiles from before the bound, survivors of a merge).
local function traitBytes(pid)
  local tb = redis.call('HGET', pkey(pid), 'tb')
  if tb then return tonumber(tb) end
  local n = 0
  local t = redis.call('HGETALL', pkey(pid) .. ':t')
  for i = 1, #t, 2 do n = n + #t[i] + #t[i + 1] end
  return n
end

-- Whether joining src into dst (last write wins per trait) stays within the trait bounds.
local function mergedTraitsFit(src, dst)
  local st = redis.call('HGETALL', pkey(src) .. ':t')
  if #st == 0 then return true end
  local count, bytes = redis.call('HLEN', pkey(dst) .. ':t'), traitBytes(dst)
  for i = 1, #st, 2 do
    local k, v = st[i], st[i + 1]
    local dlen = redis.call('HSTRLEN', pkey(dst) .. ':t', k)
    if dlen == 0 then
      count, bytes = count + 1, bytes + #k + #v
    else
      local sts = tonumber(redis.call('HGET', pkey(src) .. ':tt', k) or '0')
      local dts = tonumber(redis.call('HGET', pkey(dst) .. ':tt', k) or '-1')
      if sts > dts then bytes = bytes + #v - dlen end
    end
  end
  return count <= maxTraits and bytes <= maxTraitBytes
end

local function applyOne(ev)
  -- identifiers of the event, and the profiles they already point at
  local messageId = ev[1]
  local ts = ev[2]
  local newPid = ev[3]
  local conds = ev[4]
  local flatIds = ev[5]
  local ids = {}
  local userId = nil
  for i = 1, #flatIds, 2 do
    local kind, value = flatIds[i], flatIds[i + 1]
    if kind == 'prev' then
      -- alias: previousId names an earlier userId or an anonymousId
      if redis.call('EXISTS', tag .. ':id:user:' .. value) == 1 then kind = 'user' else kind = 'anon' end
      ids[#ids + 1] = { kind, value, true }
    else
      ids[#ids + 1] = { kind, value, false }
      if kind == 'user' then userId = value end
    end
  end
  local traits = ev[6]
  local groupId = ev[7]
  local groupTraits = ev[8]
  -- a public (client) key: limited in what it may change on a known person
  local client = restrictClients and ev[9] == 'c'
  -- no usable identifier (all junk): nothing to attach the event to
  if #ids == 0 then return { '', 0, 0, {}, {}, {}, 0 } end

  local fresh = redis.call('SET', tag .. ':dedup:' .. messageId, '1', 'NX', 'EX', ttl)
  local duplicate = not fresh

  -- the profile of the event's own userId (or of its first known identifier) is the target
  local target = nil
  local owners = {}
  for _, id in ipairs(ids) do
    local v = redis.call('GET', tag .. ':id:' .. id[1] .. ':' .. id[2])
    id[4] = v and follow(v) or nil
    if id[1] == 'user' and not id[3] and id[4] then target = id[4] end
  end
  if not target then
    for _, id in ipairs(ids) do
      if id[4] then
        local other = userIdOf(id[4])
        -- an identifier of a different known user is never adopted by this event's user, nor
        -- a known person by a client key's event through her email or external id (her
        -- anonymousId is one of her devices: its events are hers, with a client key's limits)
        if not (userId and other and other ~= userId) and not (client and id[1] ~= 'anon' and isKnown(id[4])) then
          target = id[4]
          break
        end
      end
    end
  end

  -- what this event did; the profile's full state is added at the end of the call, to
  -- the last event of each profile only (see below)
  local state = function(pid, created, merged, conflicts, limited, version, refused)
    return { pid, duplicate and 1 or 0, created and 1 or 0, merged, conflicts, limited, version, refused or {} }
  end

  if duplicate then
    if not target then return { '', 1, 0, {}, {}, {}, 0 } end
    return state(target, false, redis.call('SMEMBERS', pkey(target) .. ':merged'), {}, {},
      tonumber(redis.call('GET', tag .. ':idv') or '0'))
  end

  local created = false
  if not target then
    target = newPid
    created = true
    redis.call('HSET', pkey(target), 'id', target, 'firstSeenAt', ts, 'lastSeenAt', ts)
    redis.call('HINCRBY', tag .. ':stats', 'profiles', 1)
  end

  local merged, conflicts, limited = {}, {}, {}
  local linked = created
  -- what a client key was refused; whether the target was a known person before this event
  -- (so a new visitor's identify may still make itself known in one call)
  local refused = {}
  local targetKnown = client and not created and isKnown(target)
  local verifiedLink, claimedLink = false, false

  local function merge(src, dst)
    -- identifiers
    for _, m in ipairs(redis.call('SMEMBERS', pkey(src) .. ':ids')) do
      local sep = string.find(m, ':', 1, true)
      redis.call('SET', tag .. ':id:' .. string.sub(m, 1, sep - 1) .. ':' .. string.sub(m, sep + 1), dst)
      redis.call('SADD', pkey(dst) .. ':ids', m)
    end
    -- traits: last write wins per trait, by event time
    local st = redis.call('HGETALL', pkey(src) .. ':t')
    for i = 1, #st, 2 do
      local k = st[i]
      local sts = tonumber(redis.call('HGET', pkey(src) .. ':tt', k) or '0')
      local dts = tonumber(redis.call('HGET', pkey(dst) .. ':tt', k) or '-1')
      if sts > dts then
        redis.call('HSET', pkey(dst) .. ':t', k, st[i + 1])
        redis.call('HSET', pkey(dst) .. ':tt', k, sts)
      end
    end
    local s = redis.call('HMGET', pkey(src), 'firstSeenAt', 'lastSeenAt')
    local d = redis.call('HMGET', pkey(dst), 'firstSeenAt', 'lastSeenAt')
    if s[1] and (not d[1] or tonumber(s[1]) < tonumber(d[1])) then redis.call('HSET', pkey(dst), 'firstSeenAt', s[1]) end
    if s[2] and (not d[2] or tonumber(s[2]) > tonumber(d[2])) then redis.call('HSET', pkey(dst), 'lastSeenAt', s[2]) end
    -- counted event times: the union (an event is one member, so nothing counts twice)
    for _, c in ipairs(redis.call('SMEMBERS', pkey(src) .. ':cs')) do
      local d = pkey(dst) .. ':c:' .. c
      redis.call('ZUNIONSTORE', d, 2, d, pkey(src) .. ':c:' .. c, 'AGGREGATE', 'MIN')
      redis.call('SADD', pkey(dst) .. ':cs', c)
      redis.call('DEL', pkey(src) .. ':c:' .. c)
    end
    -- computed-trait aggregates and lead-score counters
    for _, a in ipairs(redis.call('SMEMBERS', pkey(src) .. ':ags')) do
      mergeAggregate(pkey(src) .. ':ag:' .. a, pkey(dst) .. ':ag:' .. a)
      redis.call('SADD', pkey(dst) .. ':ags', a)
    end
    mergeCounters(pkey(src) .. ':sc', pkey(dst) .. ':sc')
    -- the merged-away profile leaves its segments; the survivor is re-evaluated by the caller
    local segs = redis.call('HGETALL', pkey(src) .. ':seg')
    for i = 1, #segs, 2 do redis.call('ZREM', tag .. ':s:' .. segs[i] .. ':m', src) end
    -- the survivor answers for every profile id merged into either side
    redis.call('SADD', pkey(dst) .. ':merged', src)
    for _, m in ipairs(redis.call('SMEMBERS', pkey(src) .. ':merged')) do
      redis.call('SADD', pkey(dst) .. ':merged', m)
    end
    for _, g in ipairs(redis.call('SMEMBERS', pkey(src) .. ':groups')) do
      redis.call('SADD', pkey(dst) .. ':groups', g)
    end
    mergeContact(src, dst)
    mergeDevices(src, dst)
    redis.call('DEL', pkey(src) .. ':t', pkey(src) .. ':tt', pkey(src) .. ':ids', pkey(src) .. ':seg',
      pkey(src) .. ':cs', pkey(src) .. ':merged', pkey(src) .. ':groups', pkey(src) .. ':ags', pkey(src) .. ':sc',
      pkey(src) .. ':consent', pkey(src) .. ':re')
    redis.call('HSET', pkey(src), 'mergedInto', dst)
    redis.call('HINCRBY', tag .. ':stats', 'profiles', -1)
    merged[#merged + 1] = src
    linked = true
  end

  -- deterministic survivor: earliest first seen, then smallest id, so retries converge
  local function older(a, b)
    local fa = tonumber(redis.call('HGET', pkey(a), 'firstSeenAt') or ts)
    local fb = tonumber(redis.call('HGET', pkey(b), 'firstSeenAt') or ts)
    if fa ~= fb then return fa < fb end
    return a < b
  end

  -- Whether the survivor of joining two profiles stays within the identifier and trait
  -- bounds: a join past them is refused whole, before anything moves.
  local function joinFits(src, dst)
    return redis.call('SCARD', pkey(src) .. ':ids') + redis.call('SCARD', pkey(dst) .. ':ids') <= maxIds
      and mergedTraitsFit(src, dst)
  end
  -- Joins two profiles (merge, above); the survivor's email/external ids are verified if
  -- either side's were.
  local function join(src, dst)
    local _, a = idTrust(src)
    local _, b = idTrust(dst)
    merge(src, dst)
    if a == 'verified' or b == 'verified' then
      redis.call('HDEL', pkey(dst), 'claimed')
    elseif a == 'claimed' or b == 'claimed' then
      redis.call('HSET', pkey(dst), 'claimed', '1')
    end
    redis.call('HDEL', pkey(dst), 'tb')
  end

  for _, id in ipairs(ids) do
    -- id[4] was followed at lookup; only a merge in this loop can have moved it since
    local owner = id[4]
    if owner and #merged > 0 then owner = follow(owner) end
    local member = id[1] .. ':' .. id[2]
    local strongId = id[1] ~= 'user' and isStrong(id[1])
    if owner and owner ~= target then
      local a, b = userIdOf(owner), userIdOf(target) or userId
      if a and b and a ~= b then
        -- two different userIds never merge: the link is refused and reported
        conflicts[#conflicts + 1] = member
      elseif client and (isKnown(owner) or (targetKnown and not isAnonymousOnly(owner))) then
        -- a client key joins no known person with another profile; it may bring only a purely
        -- anonymous one (its device history) to the person whose userId it sends (login)
        refused[#refused + 1] = member
      else
        local src, dst = owner, target
        if older(owner, target) then src, dst = target, owner end
        if not joinFits(src, dst) then
          limited[#limited + 1] = member
        else
          if client and targetKnown then
            -- and what that anonymous profile was told does not change how the person is reached
            for k in pairs(protectedTrait) do
              redis.call('HDEL', pkey(owner) .. ':t', k)
              redis.call('HDEL', pkey(owner) .. ':tt', k)
            end
          end
          join(src, dst)
          target = dst
          if strongId and not client then verifiedLink = true end
        end
      end
    elseif not owner then
      if id[1] == 'user' and userIdOf(target) and userIdOf(target) ~= id[2] then
        conflicts[#conflicts + 1] = member
      elseif client and targetKnown and isStrong(id[1]) then
        -- a client key adds no userId, email or external id to a known person
        refused[#refused + 1] = member
      elseif redis.call('SCARD', pkey(target) .. ':ids') >= maxIds then
        limited[#limited + 1] = member
      else
        redis.call('SET', tag .. ':id:' .. member, target)
        redis.call('SADD', pkey(target) .. ':ids', member)
        linked = true
        if strongId then
          if client then claimedLink = true else verifiedLink = true end
        end
      end
    elseif strongId and not client then
      verifiedLink = true
    end
  end
  -- a server key's email or external id is verified; a client key's only claimed
  if verifiedLink then
    redis.call('HDEL', pkey(target), 'claimed')
  elseif claimedLink then
    redis.call('HSET', pkey(target), 'claimed', '1')
  end

  -- profile state
  local seen = redis.call('HMGET', pkey(target), 'firstSeenAt', 'lastSeenAt')
  if not seen[1] or ts < tonumber(seen[1]) then redis.call('HSET', pkey(target), 'firstSeenAt', ts) end
  if not seen[2] or ts > tonumber(seen[2]) then redis.call('HSET', pkey(target), 'lastSeenAt', ts) end
  -- traits, last write wins, within the profile's bounds (count, bytes: refused past them)
  local nTraits, bytes
  for i = 1, #traits, 2 do
    local k, v = traits[i], traits[i + 1]
    local prev = tonumber(redis.call('HGET', pkey(target) .. ':tt', k) or '-1')
    if ts >= prev then
      local old = redis.call('HSTRLEN', pkey(target) .. ':t', k)
      if client and targetKnown and protectedTrait[k] then
        -- a public key does not change how a known person is reached (email, phone, ...)
        if old == 0 or redis.call('HGET', pkey(target) .. ':t', k) ~= v then
          refused[#refused + 1] = 'trait:' .. k
        end
      else
        if not bytes then
          bytes, nTraits = traitBytes(target), redis.call('HLEN', pkey(target) .. ':t')
        end
        local delta = #v - old
        if old == 0 then delta = #k + #v end
        if (old == 0 and nTraits >= maxTraits) or (delta > 0 and bytes + delta > maxTraitBytes) then
          limited[#limited + 1] = 'trait:' .. k
        else
          redis.call('HSET', pkey(target) .. ':t', k, v)
          redis.call('HSET', pkey(target) .. ':tt', k, ts)
          bytes = bytes + delta
          if old == 0 then nTraits = nTraits + 1 end
        end
      end
    end
  end
  -- trait operations (server keys and the journey runner only; a replay never gets here):
  -- incr adds a number (absent counts as 0), add / remove put a value in / take it out of
  -- a JSON array (a static list's members carry its id in `lists`). A trait that is not a
  -- number (incr) or an array (add, remove), or that would pass the bounds, is limited.
  local ops = ev[10]
  if ops and #ops > 0 then
    if client then
      for i = 1, #ops, 3 do refused[#refused + 1] = 'trait:' .. ops[i + 1] end
    else
      if not bytes then
        bytes, nTraits = traitBytes(target), redis.call('HLEN', pkey(target) .. ':t')
      end
      for i = 1, #ops, 3 do
        local op, k, arg = ops[i], ops[i + 1], ops[i + 2]
        local old = redis.call('HGET', pkey(target) .. ':t', k)
        local v = nil
        if op == 'incr' then
          local n = old == false and 0 or tonumber(old)
          if n then
            n = n + tonumber(arg)
            if n == math.floor(n) and math.abs(n) < 2 ^ 53 then v = string.format('%d', n)
            else v = string.format('%.17g', n) end
          end
        else
          local ok, list = true, {}
          if old ~= false then ok, list = pcall(cjson.decode, old) end
          if ok and type(list) == 'table' and (old == false or string.sub(old, 1, 1) == '[') then
            local want, out, found = cjson.decode(arg), {}, false
            for _, x in ipairs(list) do
              if x == want then found = true
                if op == 'add' then out[#out + 1] = x end
              else out[#out + 1] = x end
            end
            if op == 'add' and not found then out[#out + 1] = want end
            if #out <= 1000 then
              v = #out == 0 and '[]' or cjson.encode(out)
            end
          end
        end
        local oldLen = old == false and 0 or #old
        local delta = v and (oldLen == 0 and #k + #v or #v - oldLen) or 0
        if not v or (oldLen == 0 and nTraits >= maxTraits) or (delta > 0 and bytes + delta > maxTraitBytes) then
          limited[#limited + 1] = 'trait:' .. k
        else
          redis.call('HSET', pkey(target) .. ':t', k, v)
          local prev = tonumber(redis.call('HGET', pkey(target) .. ':tt', k) or '-1')
          if ts > prev then redis.call('HSET', pkey(target) .. ':tt', k, ts) end
          bytes = bytes + delta
          if oldLen == 0 then nTraits = nTraits + 1 end
        end
      end
    end
  end
  if bytes then redis.call('HSET', pkey(target), 'tb', bytes) end

  -- group: the person belongs to the account; the account's traits, last write wins
  if groupId ~= '' then
    redis.call('SADD', pkey(target) .. ':groups', groupId)
    local acct = tag .. ':acct:' .. groupId
    for i = 1, #groupTraits, 2 do
      local k = groupTraits[i]
      local prev = tonumber(redis.call('HGET', acct .. ':tt', k) or '-1')
      if ts >= prev then
        redis.call('HSET', acct .. ':t', k, groupTraits[i + 1])
        redis.call('HSET', acct .. ':tt', k, ts)
      end
    end
  end

  -- the push device the event registers or unregisters (context.device.token)
  if ev[11] then
    local refusedDevice = applyDevice(target, ev[11], tonumber(ev[11][4]) or ts)
    if refusedDevice then limited[#limited + 1] = refusedDevice end
  end

  -- counted conditions this event matches (ZADD by messageId: a replay adds nothing)
  for _, c in ipairs(conds['add'] or {}) do
    local key = pkey(target) .. ':c:' .. c[1]
    redis.call('ZADD', key, ts, messageId)
    redis.call('SADD', pkey(target) .. ':cs', c[1])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - c[2]))
  end
  -- computed traits and lead-score counters (after the dedup check: a replay adds nothing)
  for _, a in ipairs(conds['agg'] or {}) do addAggregate(target, a, ts) end
  for _, d in ipairs(conds['dec'] or {}) do addCounter(target, d, ts) end

  redis.call('HINCRBY', pkey(target), 'rev', 1)
  local version = 0
  if linked then version = redis.call('INCR', tag .. ':idv') end
  local all = merged
  if #merged > 0 then all = redis.call('SMEMBERS', pkey(target) .. ':merged') end
  return state(target, created, all, conflicts, limited, version, refused)
end

local done = {}
local idChanged = {}
for e = 1, nEvents do
  done[e] = applyOne(events[e])
  if done[e][7] > 0 then idChanged[done[e][1]] = true end
end
-- Only the profile's state after its last event of the call is read (and sent back): that is
-- what segments are evaluated on, and reading it once per profile rather than once per event
-- saves most of the work when a person sends several events in a batch; with readState
-- 'changed', only when the call changed the profile's identity (its identifiers are
-- published). Each element:
-- pid, duplicate, created, merged, conflicts, limited, identityVersion, refused, then for the
-- last event of each profile: firstSeenAt, lastSeenAt, traits, epochs, identities, times,
-- revision (profileState, profiles/profile-state.lua).
local full = {}
for e = nEvents, 1, -1 do
  local r = done[e]
  local pid = r[1]
  if pid ~= '' and not full[pid] and (readAll or idChanged[pid]) then
    full[pid] = true
    r[9], r[10], r[11], r[12], r[13], r[14], r[15] = profileState(pkey(pid))
  end
end
-- one JSON string: the client parses it natively, where a nested reply of thousands of
-- elements costs it more than the call (an empty call encodes as {})
return cjson.encode(done)
