//! The abuse controls' shared half in Redis ([`SharedAbuse`]): quota
//! windows as counters `{prefix}q:{quota}:{value hash}:{window}` leased in
//! blocks by one script (never past the window's limit), and the bans in
//! force as one sorted set `{prefix}bans` (member: the subject, score: the
//! Unix second it ends), which every replica reads on a timer. Refusals
//! toward a ban are counted per subject in the hash `{prefix}r:{subject}`
//! (field `n`, so `INCRBY` stays the quota lease's alone in `INFO
//! commandstats`; expires
//! `within_secs` after the first), the bans a subject had in
//! `{prefix}rb:{subject}` (expires `max_ban_secs` after its ban ends, so a
//! clean subject starts again from `ban_secs`); one script adds a batch of
//! replicas' deltas and bans the subjects that reach `refusals`.

use std::sync::Arc;

use redis::Script;

use super::Inner;
use crate::config::BanSettings;
use crate::pipeline::abuse::shared::{LeaseKey, RefusalDelta, SharedAbuse, SharedTrip};
use crate::pipeline::session_gate::BoxFuture;

/// Grants `min(want, limit - used)` and counts it, atomically.
const LEASE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return grant
";

/// Drops ended bans, then lists those in force (bounded).
const BANS: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[2])
";

/// Keeps the longer of a ban already there and the new one.
const BAN: &str = r"
local held = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > held then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
return 1
";

/// KEYS: the bans set, then per subject its count and its bans so far.
/// ARGV: refusals, within_secs, ban_secs, max_ban_secs, now, then per
/// subject: its text, its delta, 1 when a replica banned it on its own.
/// A subject banned now is not counted. Returns (subject, secs, bans,
/// banned_here) for each subject banned or recorded.
const COUNT: &str = r"
local refusals, within = tonumber(ARGV[1]), tonumber(ARGV[2])
local ban, max_ban, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  local count, repeats = KEYS[2 * i], KEYS[2 * i + 1]
  local subject, delta = ARGV[3 * i + 3], tonumber(ARGV[3 * i + 4])
  local here = ARGV[3 * i + 5] == '1'
  local held = tonumber(redis.call('ZSCORE', KEYS[1], subject) or '0')
  if here or held <= now then
    local sum = redis.call('HINCRBY', count, 'n', delta)
    if sum == delta then redis.call('EXPIRE', count, within) end
    if here or sum >= refusals then
      redis.call('DEL', count)
      local bans = redis.call('INCR', repeats)
      local secs = max_ban
      if bans <= 40 then secs = math.min(ban * 2 ^ (bans - 1), max_ban) end
      secs = math.floor(secs)
      redis.call('EXPIRE', repeats, secs + max_ban)
      if now + secs > held then redis.call('ZADD', KEYS[1], now + secs, subject) end
      out[#out + 1] = {subject, secs, bans, here and 1 or 0}
    end
  end
end
return out
";

pub struct RedisAbuse {
    inner: Arc<Inner>,
    lease: Script,
    bans: Script,
    ban: Script,
    count: Script,
}

impl RedisAbuse {
    pub(super) fn new(inner: Arc<Inner>) -> RedisAbuse {
        RedisAbuse {
            inner,
            lease: Script::new(LEASE),
            bans: Script::new(BANS),
            ban: Script::new(BAN),
            count: Script::new(COUNT),
        }
    }
}

impl SharedAbuse for RedisAbuse {
    fn lease(
        &self,
        key: LeaseKey,
        want: u64,
        limit: u64,
        ttl_secs: u64,
    ) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            let name = self.inner.key(&format!(
                "q:{}:{:016x}:{}",
                key.quota, key.value, key.window
            ));
            let mut conn = self.inner.conn.clone();
            self.inner
                .run("quota_lease", async {
                    self.lease
                        .key(&name)
                        .arg(want)
                        .arg(limit)
                        .arg(ttl_secs)
                        .invoke_async::<u64>(&mut conn)
                        .await
                })
                .await
                .map_err(|err| err.to_string())
        })
    }

    fn ban(&self, subject: String, until: i64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let name = self.inner.key("bans");
            let mut conn = self.inner.conn.clone();
            self.inner
                .run("ban", async {
                    self.ban
                        .key(&name)
                        .arg(&subject)
                        .arg(until)
                        .invoke_async::<i64>(&mut conn)
                        .await
                })
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        })
    }

    fn lift(&self, subject: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let name = self.inner.key("bans");
            let mut conn = self.inner.conn.clone();
            self.inner
                .run("ban", async {
                    redis::cmd("ZREM")
                        .arg(&name)
                        .arg(&subject)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        })
    }

    fn bans(&self, now: i64, limit: usize) -> BoxFuture<'_, Result<Vec<(String, i64)>, String>> {
        Box::pin(async move {
            let name = self.inner.key("bans");
            let mut conn = self.inner.conn.clone();
            self.inner
                .run("bans", async {
                    self.bans
                        .key(&name)
                        .arg(now)
                        .arg(limit)
                        .invoke_async::<Vec<(String, i64)>>(&mut conn)
                        .await
                })
                .await
                .map_err(|err| err.to_string())
        })
    }

    fn counts_refusals(&self) -> bool {
        true
    }

    fn refusals(
        &self,
        deltas: Vec<RefusalDelta>,
        rules: BanSettings,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<SharedTrip>, String>> {
        Box::pin(async move {
            let mut invocation = self.count.prepare_invoke();
            invocation.key(self.inner.key("bans"));
            for delta in &deltas {
                invocation
                    .key(self.inner.key(&format!("r:{}", delta.subject)))
                    .key(self.inner.key(&format!("rb:{}", delta.subject)));
            }
            invocation
                .arg(rules.refusals)
                .arg(rules.within_secs)
                .arg(rules.ban_secs)
                .arg(rules.max_ban_secs)
                .arg(now);
            for delta in &deltas {
                invocation
                    .arg(&delta.subject)
                    .arg(delta.count)
                    .arg(u8::from(delta.banned_here));
            }
            let mut conn = self.inner.conn.clone();
            let trips: Vec<(String, u64, u32, u8)> = self
                .inner
                .run("ban_count", async {
                    invocation.invoke_async(&mut conn).await
                })
                .await
                .map_err(|err| err.to_string())?;
            Ok(trips
                .into_iter()
                .map(|(subject, ban_secs, bans, here)| SharedTrip {
                    subject,
                    ban_secs,
                    bans,
                    banned_here: here == 1,
                })
                .collect())
        })
    }
}
