-- Stores an issued session under the per-address and per-user limits.
-- ARGV: prefix, id, token hash, now, expires at, idle, retention, token
-- keep, user, max per user, refuse ('1'), address, max per address, live
-- sessions this replica holds for the address, metadata JSON, ip, user
-- agent, client version, key id, roles, permissions (comma-joined) ('' absent). Returns
-- {'created', evicted, record fields...} or {'too_many_for_ip'} or
-- {'too_many_for_user'}.
local id = ARGV[2]
local tok = ARGV[3]
local now = tonumber(ARGV[4])
local exp = tonumber(ARGV[5])
local idle = tonumber(ARGV[6])
local user = ARGV[9]
local addr = ARGV[12]
if addr ~= '' then
  local set = ipkey(addr)
  local live = 0
  for _, other in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    if other ~= id and is_live(other, now, idle) then
      live = live + 1
    else
      redis.call('ZREM', set, other)
    end
  end
  if live + tonumber(ARGV[14]) >= tonumber(ARGV[13]) then
    return { 'too_many_for_ip' }
  end
end
local evicted = 0
if user ~= '' then
  local held = {}
  for _, other in ipairs(redis.call('ZRANGE', ukey(user), 0, -1)) do
    if is_live(other, now, idle) then
      held[#held + 1] = other
    else
      redis.call('ZREM', ukey(user), other)
    end
  end
  while #held >= tonumber(ARGV[10]) do
    if ARGV[11] == '1' then return { 'too_many_for_user' } end
    if delete_session(table.remove(held, 1)) then evicted = evicted + 1 end
  end
end
local key = skey(id)
redis.call('DEL', key)
redis.call('HSET', key, 'kind', 'issued', 'first', now, 'last', now, 'exp', exp,
  'tok', tok, 'req', 0, 'bytes', 0)
local optional = { user = user, ipk = addr, meta = ARGV[15], ip = ARGV[16],
  ua = ARGV[17], ver = ARGV[18], key = ARGV[19], roles = ARGV[20], perms = ARGV[21] }
for field, value in pairs(optional) do
  if value ~= '' then redis.call('HSET', key, field, value) end
end
-- The indices end when their last session may: never later than a token.
if user ~= '' then
  redis.call('ZADD', ukey(user), now, id)
  redis.call('EXPIRE', ukey(user), ARGV[8])
end
if addr ~= '' then
  redis.call('ZADD', ipkey(addr), now, id)
  redis.call('EXPIRE', ipkey(addr), ARGV[8])
end
-- The token key ends with the session's absolute end plus the retention
-- (an expired session's token still answers "expired"), never later than
-- the keep bound.
local token_ttl = math.min(tonumber(ARGV[8]), math.max(exp - now + tonumber(ARGV[7]), 1))
redis.call('SET', tkey(tok), id, 'EX', token_ttl)
redis.call('ZADD', IDS, 0, id)
local live_until = issued_until(exp, now, idle)
redis.call('ZADD', ISSUED, live_until, id)
expire_record(key, live_until, now, tonumber(ARGV[7]))
return append_record({ 'created', tostring(evicted) }, key)
