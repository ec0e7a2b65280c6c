//! The series guard's shared half (`[cardinality]` with the Redis store,
//! see `ingest::cardinality`): the series admitted per metric and window,
//! as one Redis set per (window, metric) of 8-byte series hashes, so every
//! replica on one Redis holds one bound between them.
//!
//! - `{prefix}card:key`: the hash key every replica uses, created once
//!   (`SET NX`, 16 random bytes) by the first replica that needs it and
//!   read by the others. Never the signing secret (every client has it)
//!   and never a constant, so a client cannot aim at a known series' hash.
//! - `{prefix}card:{window}:{metric}`: the series of a metric (its keyed
//!   hash, hex) admitted in window `now / window_secs`; the previous
//!   window's set still counts, and a series seen again moves from it to
//!   the current one, so both together hold at most the bound (the local
//!   guard's rotation, on windows every replica agrees on).
//! - `{prefix}card:{window}:names`: the metrics that took a series in the
//!   window, at most `max_metrics` new ones (Redis memory: at most
//!   `max_metrics` sets of at most the bound, two windows' worth).
//!
//! Every key expires (`EXPIREAT`) two windows after its own plus a minute,
//! so old windows vanish. One export's new series, of all its metrics, are
//! judged by one script call ([`SharedSeries::admit`]): atomic, so two
//! replicas racing for the last slots never both get one.

use std::sync::Arc;

use redis::Script;

use super::Inner;
use crate::session::StoreError;

/// Returns the shared key, creating it first if no replica has.
const KEY: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
";

/// KEYS: the window's names set, then per metric its current and previous
/// sets. ARGV: bound, max_metrics, expire-at, then per metric: its name,
/// the new series it may still add for this session, the counts of
/// refreshes and of new series, then those hashes (refreshes first).
/// Returns one verdict per new series: 0 refused, 1 known, 2 added. A
/// refresh (a series this replica knows from the previous window) is
/// moved or added when there is room, never refused to the client.
const ADMIT: &str = r"
local bound = tonumber(ARGV[1])
local max_metrics = tonumber(ARGV[2])
local expire_at = ARGV[3]
local names = KEYS[1]
local out = {}
local a = 4
for i = 1, (#KEYS - 1) / 2 do
  local cur, prev = KEYS[2 * i], KEYS[2 * i + 1]
  local name = ARGV[a]
  local allowance = tonumber(ARGV[a + 1])
  local refresh = tonumber(ARGV[a + 2])
  local total = refresh + tonumber(ARGV[a + 3])
  a = a + 4
  local held = redis.call('SCARD', cur) + redis.call('SCARD', prev)
  local tracked = held > 0 or redis.call('SCARD', names) < max_metrics
  local touched = false
  for j = 1, total do
    local h = ARGV[a]
    a = a + 1
    local verdict = 0
    if redis.call('SISMEMBER', cur, h) == 1 then
      verdict = 1
    elseif redis.call('SREM', prev, h) == 1 then
      redis.call('SADD', cur, h)
      touched = true
      verdict = 1
    elseif tracked and held < bound and (j <= refresh or allowance > 0) then
      redis.call('SADD', cur, h)
      held = held + 1
      touched = true
      verdict = 2
      if j > refresh then allowance = allowance - 1 end
    end
    if j > refresh then out[#out + 1] = verdict end
  end
  if touched then
    redis.call('EXPIREAT', cur, expire_at)
    redis.call('SADD', names, name)
    redis.call('EXPIREAT', names, expire_at)
  end
end
return out
";

/// What one metric of an export asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricAsk {
    /// The metric name's shared hash.
    pub metric: u64,
    /// New series this session may still add to it (its local bound).
    pub allowance: u32,
    /// Series this replica knows from the previous window (moved to the
    /// current one, or added when there is room; never refused).
    pub refresh: Vec<u64>,
    /// Series this replica has not seen in either window.
    pub new: Vec<u64>,
}

/// The store's verdict on one new series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesVerdict {
    /// Past the bound (or a new metric past `max_metrics`): drop it.
    Refused,
    /// Admitted already, by some replica: it flows, it costs no slot.
    Known,
    /// Admitted now: it took one of the bound's slots.
    Added,
}

/// One window's limits, as the script applies them.
#[derive(Debug, Clone, Copy)]
pub struct SeriesWindow {
    /// `now / window_secs`.
    pub window: i64,
    pub window_secs: u64,
    pub bound: usize,
    pub max_metrics: usize,
}

/// A handle on the store's connection for the series guard (cheap to clone).
#[derive(Clone)]
pub struct SharedSeries {
    inner: Arc<Inner>,
    key: Arc<Script>,
    admit: Arc<Script>,
}

impl SharedSeries {
    pub(super) fn new(inner: Arc<Inner>) -> SharedSeries {
        SharedSeries {
            inner,
            key: Arc::new(Script::new(KEY)),
            admit: Arc::new(Script::new(ADMIT)),
        }
    }

    /// The hash key shared by every replica on this Redis (created by the
    /// first to ask).
    pub async fn hash_key(&self) -> Result<[u8; 16], StoreError> {
        let mut fresh = [0u8; 16];
        getrandom::fill(&mut fresh).map_err(|err| StoreError(format!("random key: {err}")))?;
        let name = self.inner.key("card:key");
        let mut conn = self.inner.conn.clone();
        let held: Vec<u8> = self
            .inner
            .run("series_key", async {
                self.key
                    .key(&name)
                    .arg(&fresh[..])
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        held.try_into()
            .map_err(|_| StoreError(format!("{name} does not hold 16 bytes")))
    }

    /// Judges the new series of one export, all its metrics in one call:
    /// one verdict per entry of each `MetricAsk::new`, in order.
    pub async fn admit(
        &self,
        limits: SeriesWindow,
        asks: &[MetricAsk],
    ) -> Result<Vec<Vec<SeriesVerdict>>, StoreError> {
        let set =
            |window: i64, metric: u64| self.inner.key(&format!("card:{window}:{metric:016x}"));
        let span = limits.window_secs as i64;
        let expire_at = (limits.window + 2).saturating_mul(span).saturating_add(60);
        let mut invocation = self.admit.prepare_invoke();
        invocation.key(self.inner.key(&format!("card:{}:names", limits.window)));
        for ask in asks {
            invocation
                .key(set(limits.window, ask.metric))
                .key(set(limits.window - 1, ask.metric));
        }
        invocation
            .arg(limits.bound)
            .arg(limits.max_metrics)
            .arg(expire_at);
        for ask in asks {
            invocation
                .arg(format!("{:016x}", ask.metric))
                .arg(ask.allowance)
                .arg(ask.refresh.len())
                .arg(ask.new.len());
            for hash in ask.refresh.iter().chain(&ask.new) {
                invocation.arg(&hash.to_be_bytes()[..]);
            }
        }
        let mut conn = self.inner.conn.clone();
        let flat: Vec<i64> = self
            .inner
            .run("series", async { invocation.invoke_async(&mut conn).await })
            .await?;
        let mut verdicts = flat.into_iter().map(|v| match v {
            2 => SeriesVerdict::Added,
            1 => SeriesVerdict::Known,
            _ => SeriesVerdict::Refused,
        });
        let out: Vec<Vec<SeriesVerdict>> = asks
            .iter()
            .map(|ask| verdicts.by_ref().take(ask.new.len()).collect())
            .collect();
        if out
            .iter()
            .zip(asks)
            .any(|(got, ask)| got.len() != ask.new.len())
        {
            return Err(StoreError("the series script answered short".into()));
        }
        Ok(out)
    }
}
