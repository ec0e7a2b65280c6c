-- Touches, extends or refreshes a live issued session. ARGV: prefix, id,
-- now, idle, retention, op (touch | extend | refresh), seconds or new token
-- hash, max lifetime, token keep. Returns {outcome, record fields...}.
local id = ARGV[2]
local now = tonumber(ARGV[3])
local idle = tonumber(ARGV[4])
local op = ARGV[6]
local key = skey(id)
local f = redis.call('HMGET', key, 'kind', 'last', 'exp', 'first', 'tok')
if not f[1] then return { 'unknown' } end
if f[1] ~= 'issued' then return { 'not_issued' } end
local exp = tonumber(f[3]) or 0
if issued_until(exp, tonumber(f[2]) or 0, idle) < now then return { 'expired' } end
-- A token key ends with its session's end plus the retention (as at issue).
local function token_ttl()
  return math.min(tonumber(ARGV[9]), math.max(exp - now + tonumber(ARGV[5]), 1))
end
if op == 'extend' then
  local cap = (tonumber(f[4]) or 0) + tonumber(ARGV[8])
  exp = math.max(math.min(exp + tonumber(ARGV[7]), cap), exp)
  redis.call('HSET', key, 'exp', exp)
  if f[5] then redis.call('EXPIRE', tkey(f[5]), token_ttl()) end
elseif op == 'refresh' then
  -- The old token is dead when this script returns.
  if f[5] then redis.call('DEL', tkey(f[5])) end
  redis.call('HSET', key, 'tok', ARGV[7])
  redis.call('SET', tkey(ARGV[7]), id, 'EX', token_ttl())
end
redis.call('HSET', key, 'last', now)
local live_until = issued_until(exp, now, idle)
expire_record(key, live_until, now, tonumber(ARGV[5]))
redis.call('ZADD', ISSUED, live_until, id)
return append_record({ 'done' }, key)
