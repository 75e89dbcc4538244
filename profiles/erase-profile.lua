-- The Redis step of an erasure job, atomically: the person's profile and every profile id
-- merged into it lose their identifiers (which stop resolving), traits, memberships (they
-- leave every segment), counted times, aggregates, scores, groups, consent, cap logs,
-- re-entry records, double opt-in records, push devices (and their owner records) and
-- suppression-list entry by profile id; tombstones of every identifier
-- and profile id are written (schemas/erasure.ts), and the job records what it needs for
-- the ClickHouse steps in the same step, so a crash right after loses nothing.
-- Key layout: schemas/redis-keys.ts and profiles/apply-event.lua's header. KEYS[1] = workspace tag.
-- ARGV: 1 profile id (followed to its survivor), 2 job id, 3 now ms, 4 tombstone retention ms, 5 campaign ids (JSON
--       array), 6 channels of the cap logs (JSON array, incl. "all").
-- Returns the job's record of the step, JSON {identities: ["kind:value"...], profileIds: [...]};
-- run again for the same job, it changes nothing and returns the same.
local tag, pid, jobId = KEYS[1], ARGV[1], ARGV[2]
local now, keep = tonumber(ARGV[3]), tonumber(ARGV[4])
local campaigns, channels = cjson.decode(ARGV[5]), cjson.decode(ARGV[6])
local job = tag .. ':erasure:' .. jobId
if redis.call('EXISTS', job) == 0 then return redis.error_reply('no erasure job ' .. jobId) end
local recorded = redis.call('HGET', job, 'redisResult')
if recorded then return recorded end

local function pkey(p) return tag .. ':p:' .. p end
-- merged into another profile since the job was created: the person is the survivor now
-- (survivor.lua, put in front of this script by erase.ts)
pid = survivor(tag, pid)
local pids = { pid }
local isErased = { [pid] = true }
for _, m in ipairs(redis.call('SMEMBERS', pkey(pid) .. ':merged')) do
  if not isErased[m] then
    pids[#pids + 1] = m
    isErased[m] = true
  end
end

local tombs = tag .. ':erased'
local function tombstone(member) redis.call('ZADD', tombs, now, redis.sha1hex(member)) end

local ids = {}
local traits = redis.call('HLEN', pkey(pid) .. ':t')
for _, q in ipairs(pids) do
  local p = pkey(q)
  for _, m in ipairs(redis.call('SMEMBERS', p .. ':ids')) do
    ids[#ids + 1] = m
    local sep = string.find(m, ':', 1, true)
    local key = tag .. ':id:' .. string.sub(m, 1, sep - 1) .. ':' .. string.sub(m, sep + 1)
    local owner = redis.call('GET', key)
    if owner and isErased[owner] then redis.call('DEL', key) end
    tombstone(m)
  end
  local segs = redis.call('HGETALL', p .. ':seg')
  for i = 1, #segs, 2 do redis.call('ZREM', tag .. ':s:' .. segs[i] .. ':m', q) end
  for _, c in ipairs(redis.call('SMEMBERS', p .. ':cs')) do redis.call('DEL', p .. ':c:' .. c) end
  for _, a in ipairs(redis.call('SMEMBERS', p .. ':ags')) do redis.call('DEL', p .. ':ag:' .. a) end
  for _, ch in ipairs(channels) do redis.call('DEL', p .. ':cap:' .. ch) end
  -- push devices: neither the device nor its token names this person any more (a later
  -- event registers them afresh)
  local devs = redis.call('HGETALL', p .. ':dev')
  for i = 1, #devs, 2 do
    local d, token = devs[i], string.match(devs[i + 1], '^%d+|[^|]*|(.*)$')
    local owner = redis.call('GET', tag .. ':dev:' .. d)
    if owner and isErased[owner] then redis.call('DEL', tag .. ':dev:' .. d) end
    if token and redis.call('GET', tag .. ':devtok:' .. token) == d then redis.call('DEL', tag .. ':devtok:' .. token) end
  end
  -- re-entry records: the profile's hash (<p>:re), and older ones per campaign
  for _, c in ipairs(campaigns) do redis.call('DEL', tag .. ':re:' .. c .. ':' .. q) end
  redis.call('SREM', tag .. ':suppress', 'profile:' .. q)
  if redis.call('EXISTS', p) == 1 and not redis.call('HGET', p, 'mergedInto') then
    redis.call('HINCRBY', tag .. ':stats', 'profiles', -1)
  end
  redis.call('DEL', p, p .. ':t', p .. ':tt', p .. ':ids', p .. ':seg', p .. ':cs', p .. ':merged',
    p .. ':groups', p .. ':ags', p .. ':sc', p .. ':consent', p .. ':re', p .. ':optin', p .. ':dev')
  tombstone('profile:' .. q)
  redis.call('HSET', tag .. ':erasure:byprofile', q, jobId)
end
redis.call('ZREMRANGEBYSCORE', tombs, '-inf', now - keep)

-- cjson writes an empty table as {}: build the arrays' text by hand when empty
local function list(t)
  if #t == 0 then return '[]' end
  return cjson.encode(t)
end
local result = '{"identities":' .. list(ids) .. ',"profileIds":' .. list(pids) .. '}'
redis.call('HSET', job, 'redisResult', result, 'step:redis', now, 'count:identities', #ids,
  'count:profiles', #pids, 'count:traits', traits)
return result
