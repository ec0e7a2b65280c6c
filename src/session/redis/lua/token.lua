-- Which session a token opens. ARGV: prefix, token hash (hex), now, idle,
-- retention, touch ('1' for /auth), ip, user agent ('' absent). Returns
-- {state, id, user, roles, permissions ('' none)}; a live one is touched
-- when asked.
local tok = ARGV[2]
local now = tonumber(ARGV[3])
local idle = tonumber(ARGV[4])
local id = redis.call('GET', tkey(tok))
if not id then return { 'unknown' } end
local revoked_until = tonumber(redis.call('ZSCORE', REVOKED, id) or '')
if revoked_until and revoked_until >= now then return { 'revoked', id } end
local key = skey(id)
local f = redis.call('HMGET', key, 'kind', 'tok', 'user', 'last', 'exp', 'roles', 'perms')
-- The index may lag a refresh or a reused id: the record decides.
if f[1] ~= 'issued' or f[2] ~= tok then return { 'unknown' } end
local user = f[3] or ''
local roles = f[6] or ''
local perms = f[7] or ''
local exp = tonumber(f[5]) or 0
if issued_until(exp, tonumber(f[4]) or 0, idle) < now then
  return { 'expired', id, user, roles, perms }
end
if ARGV[6] == '1' then
  redis.call('HSET', key, 'last', now)
  redis.call('HINCRBY', key, 'req', 1)
  set_or_del(key, 'ip', ARGV[7])
  set_or_del(key, 'ua', ARGV[8])
  local live_until = issued_until(exp, now, idle)
  expire_record(key, live_until, now, tonumber(ARGV[5]))
  redis.call('ZADD', ISSUED, live_until, id)
end
return { 'live', id, user, roles, perms }
