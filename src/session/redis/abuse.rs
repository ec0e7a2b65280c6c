//! The abuse controls' shared half in Redis ([`SharedAbuse`]): quota
//! windows as counters `{prefix}q:{quota}:{value hash}:{window}` leased in
//! blocks by one script (never past the window's limit), and the bans in
//! force as one sorted set `{prefix}bans` (member: the subject, score: the
//! Unix second it ends), which every replica reads on a timer.

use std::sync::Arc;

use redis::Script;

use super::Inner;
use crate::pipeline::abuse::shared::{LeaseKey, SharedAbuse};
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

pub struct RedisAbuse {
    inner: Arc<Inner>,
    lease: Script,
    bans: Script,
    ban: Script,
}

impl RedisAbuse {
    pub(super) fn new(inner: Arc<Inner>) -> RedisAbuse {
        RedisAbuse {
            inner,
            lease: Script::new(LEASE),
            bans: Script::new(BANS),
            ban: Script::new(BAN),
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
}
