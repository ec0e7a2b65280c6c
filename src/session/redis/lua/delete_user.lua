-- Deletes every session issued for a user. ARGV: prefix, user. Returns how many.
local set = ukey(ARGV[2])
local count = 0
for _, id in ipairs(redis.call('ZRANGE', set, 0, -1)) do
  if delete_session(id) then count = count + 1 end
end
redis.call('DEL', set)
return count
