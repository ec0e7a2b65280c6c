-- Write-behind of signed sessions, one batch, atomic. ARGV: prefix, idle,
-- retention, then 9 per session: id, since (first sighting of the batch),
-- last, requests, bytes, ip, user agent, client version, key id ('' absent).
local idle = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local PER = 9
local count = math.floor((#ARGV - 3) / PER)
for i = 0, count - 1 do
  local b = 3 + i * PER
  local id = ARGV[b + 1]
  local since = tonumber(ARGV[b + 2])
  local last = tonumber(ARGV[b + 3])
  local key = skey(id)
  local f = redis.call('HMGET', key, 'kind', 'last', 'first')
  -- A signature naming an issued session's id does not make it signed.
  if f[1] ~= 'issued' then
    local old_last = tonumber(f[2])
    local newest = true
    if not f[1] or not old_last or old_last + idle < since then
      -- New, or idle past its end before this batch: it starts over.
      redis.call('DEL', key)
      redis.call('HSET', key, 'kind', 'signed', 'first', since, 'last', last,
        'req', ARGV[b + 4], 'bytes', ARGV[b + 5])
      old_last = last
    else
      -- Another replica's counts are already there: add ours.
      redis.call('HINCRBY', key, 'req', ARGV[b + 4])
      redis.call('HINCRBY', key, 'bytes', ARGV[b + 5])
      local old_first = tonumber(f[3])
      if not old_first or since < old_first then
        redis.call('HSET', key, 'first', since)
      end
      if last >= old_last then
        redis.call('HSET', key, 'last', last)
      else
        newest = false
      end
    end
    -- The latest sighting (of any replica) says who the client is now.
    if newest then
      set_or_del(key, 'ip', ARGV[b + 6])
      set_or_del(key, 'ua', ARGV[b + 7])
      set_or_del(key, 'ver', ARGV[b + 8])
      set_or_del(key, 'key', ARGV[b + 9])
    end
    expire_record(key, math.max(last, old_last) + idle, last, retention)
    redis.call('ZADD', IDS, 0, id)
  end
end
return count
