-- Drops index entries whose record has expired out of Redis, a slice at a
-- time (the flush task calls it each tick). ARGV: prefix, the last id of
-- the previous slice ('' to start over), slice size, now. Returns the last
-- id looked at, or '' at the end.
local start = '-'
if ARGV[2] ~= '' then start = '(' .. ARGV[2] end
local size = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYLEX', IDS, start, '+', 'LIMIT', 0, size)
for _, id in ipairs(ids) do
  if redis.call('EXISTS', skey(id)) == 0 then
    redis.call('ZREM', IDS, id)
    redis.call('ZREM', ISSUED, id)
  end
end
-- An issued session past its last live second cannot come back (a touch
-- needs it live); a minute of slack for replicas' clocks.
redis.call('ZREMRANGEBYSCORE', ISSUED, '-inf', '(' .. (tonumber(ARGV[4]) - 60))
if #ids < size then return '' end
return ids[#ids]
