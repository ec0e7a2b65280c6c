-- Prepended to every telegate script. ARGV[1] is the key prefix; every key
-- is built here from it (one Redis, not a cluster).
--
-- Layout (P = sessions.redis_prefix):
--   P s:<id>    hash: one session (either kind), see record.rs for fields
--   P t:<hash>  string: hex SHA-256 of a token -> its session id
--   P u:<user>  zset: a user's issued sessions, score = creation time
--   P ip:<addr> zset: issued sessions opened by a signed client's address
--   P ids       zset: every session id, score 0 (ZRANGEBYLEX paging)
--   P issued    zset: issued session id -> last live second
--   P revoked   zset: revoked id -> revoked until
--   P revlog    zset: revoked id -> sequence number (what replicas poll)
--   P revseq    string: the last sequence number
--   P epoch     string: changes on every wipe
local P = ARGV[1]
local function skey(id) return P .. 's:' .. id end
local function tkey(tok) return P .. 't:' .. tok end
local function ukey(user) return P .. 'u:' .. user end
local function ipkey(addr) return P .. 'ip:' .. addr end
local IDS = P .. 'ids'
local ISSUED = P .. 'issued'
local REVOKED = P .. 'revoked'
local REVLOG = P .. 'revlog'
local REVSEQ = P .. 'revseq'
local EPOCH = P .. 'epoch'

-- The last live second of an issued session: the earlier of its absolute
-- end and its idle end.
local function issued_until(exp, last, idle)
  return math.min(exp, last + idle)
end

-- Whether session `id` exists and is live at `now` (either kind).
local function is_live(id, now, idle)
  local f = redis.call('HMGET', skey(id), 'kind', 'last', 'exp')
  local last = tonumber(f[2])
  if not f[1] or not last then return false end
  if f[1] == 'issued' then
    return issued_until(tonumber(f[3]) or 0, last, idle) >= now
  end
  return last + idle >= now
end

-- Deletes a session with its token and index entries; true when it existed.
local function delete_session(id)
  local key = skey(id)
  local f = redis.call('HMGET', key, 'tok', 'user', 'ipk')
  local existed = redis.call('DEL', key) == 1
  if f[1] then redis.call('DEL', tkey(f[1])) end
  if f[2] then redis.call('ZREM', ukey(f[2]), id) end
  if f[3] then redis.call('ZREM', ipkey(f[3]), id) end
  redis.call('ZREM', IDS, id)
  redis.call('ZREM', ISSUED, id)
  return existed
end

-- Sets a field, or removes it for the empty string (absent).
local function set_or_del(key, field, value)
  if value == '' then
    redis.call('HDEL', key, field)
  else
    redis.call('HSET', key, field, value)
  end
end

-- Memory bound only: a record outlives its logical end by the retention,
-- so reads can still answer 410. Liveness is decided on the fields.
local function expire_record(key, live_until, now, retention)
  redis.call('EXPIRE', key, math.max(1, live_until - now + retention))
end

-- A whole hash as a flat list appended to `out`.
local function append_record(out, key)
  local all = redis.call('HGETALL', key)
  for i = 1, #all do out[#out + 1] = all[i] end
  return out
end
