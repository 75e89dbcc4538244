-- Gives back what contact-policy.lua counted for a send that finally failed, so a
-- replayed dead letter is not refused by its own earlier attempt.
-- KEYS: 3 cap logs and the re-entry record as in contact-policy.lua (KEYS[3..5]); ARGV: 1 send key
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local last = redis.call('GET', KEYS[3])
if last and string.sub(last, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then redis.call('DEL', KEYS[3]) end
return 1
