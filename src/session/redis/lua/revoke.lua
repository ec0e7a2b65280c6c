-- Revokes a session. ARGV: prefix, id, now, until, token keep (seconds),
-- change log cap. Returns the kind, or nil for an unknown id. A signed
-- session stays (marked); an issued one is deleted but its token key stays
-- for the token keep (the revocation's lifetime), so the token is answered
-- "revoked" rather than "unknown".
local id = ARGV[2]
local now = tonumber(ARGV[3])
local key = skey(id)
local f = redis.call('HMGET', key, 'kind', 'tok', 'user', 'ipk', 'rev')
if not f[1] then return false end
if f[1] == 'issued' then
  redis.call('DEL', key)
  if f[2] then redis.call('EXPIRE', tkey(f[2]), ARGV[5]) end
  if f[3] then redis.call('ZREM', ukey(f[3]), id) end
  if f[4] then redis.call('ZREM', ipkey(f[4]), id) end
  redis.call('ZREM', IDS, id)
  redis.call('ZREM', ISSUED, id)
elseif not f[5] then
  redis.call('HSET', key, 'rev', now)
end
redis.call('ZADD', REVOKED, ARGV[4], id)
redis.call('ZREMRANGEBYSCORE', REVOKED, '-inf', '(' .. now)
-- Every replica polls the log for what changed since its last look.
local seq = redis.call('INCR', REVSEQ)
redis.call('ZADD', REVLOG, seq, id)
redis.call('ZREMRANGEBYRANK', REVLOG, 0, -(tonumber(ARGV[6]) + 1))
return f[1]
