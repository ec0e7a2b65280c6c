-- What a replica polls each flush tick. ARGV: prefix, after (the last
-- sequence number seen; -1 for everything), now. Returns: epoch, sequence,
-- live issued sessions, full ('1': the pairs are every live revocation),
-- then revoked id, until pairs.
local after = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local seq = tonumber(redis.call('GET', REVSEQ) or '0')
local epoch = redis.call('GET', EPOCH) or ''
-- A counter behind ours was reset by a wipe; a log that starts after ours
-- was trimmed past what we saw: both need everything.
local full = after < 0 or after > seq
if not full and after < seq then
  local oldest = redis.call('ZRANGE', REVLOG, 0, 0, 'WITHSCORES')
  if not oldest[2] or tonumber(oldest[2]) > after + 1 then full = true end
end
local live = redis.call('ZCOUNT', ISSUED, now, '+inf')
local out = { epoch, tostring(seq), tostring(live), full and '1' or '0' }
if full then
  local all = redis.call('ZRANGEBYSCORE', REVOKED, now, '+inf', 'WITHSCORES')
  for i = 1, #all do out[#out + 1] = all[i] end
elseif after < seq then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', REVLOG, '(' .. after, '+inf')) do
    local until_ = redis.call('ZSCORE', REVOKED, id)
    if until_ then
      out[#out + 1] = id
      out[#out + 1] = until_
    end
  end
end
return out
