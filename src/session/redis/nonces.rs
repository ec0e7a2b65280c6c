//! The v2 replay cache's shared half: (key id, nonce) claims in Redis, so
//! replicas agree on which export was already delivered (see
//! `ingest::replay`). A key `{prefix}n:{key id}|{nonce}` holds `p`
//! (pending: the first request is running) or `d` + the collector's answer
//! (delivered), and expires with the replay window; a failed attempt
//! deletes it, so a retry is processed again.

use std::sync::Arc;

use redis::Script;

use super::Inner;
use crate::session::StoreError;

/// Claims the key (`SET p NX EX ttl`) or returns what it holds, atomically.
const CLAIM: &str = r"
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], 'p', 'EX', ARGV[1])
return false
";

/// Delivered, unless the key expired or was taken over meanwhile.
const DELIVER: &str = r"
if redis.call('GET', KEYS[1]) == 'p' then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
return 1
";

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours: process it, then settle.
    Claimed,
    /// Another request (any replica) is running it.
    Pending,
    /// Delivered: the stored answer (as given to [`SharedNonces::deliver`]).
    Delivered(Vec<u8>),
}

/// A handle on the store's connection for nonce claims (cheap to clone).
#[derive(Clone)]
pub struct SharedNonces {
    inner: Arc<Inner>,
    claim: Arc<Script>,
    deliver: Arc<Script>,
}

impl SharedNonces {
    pub(super) fn new(inner: Arc<Inner>) -> SharedNonces {
        SharedNonces {
            inner,
            claim: Arc::new(Script::new(CLAIM)),
            deliver: Arc::new(Script::new(DELIVER)),
        }
    }

    fn key(&self, nonce_key: &str) -> String {
        self.inner.key(&format!("n:{nonce_key}"))
    }

    /// Claims `nonce_key` for `ttl_secs`, or says who holds it.
    pub async fn claim(&self, nonce_key: &str, ttl_secs: u64) -> Result<Claim, StoreError> {
        let key = self.key(nonce_key);
        let mut conn = self.inner.conn.clone();
        let held: Option<Vec<u8>> = self
            .inner
            .run("replay", async {
                self.claim
                    .key(&key)
                    .arg(ttl_secs.max(1))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match held {
            None => Claim::Claimed,
            Some(value) => match value.split_first() {
                Some((b'd', answer)) => Claim::Delivered(answer.to_vec()),
                _ => Claim::Pending,
            },
        })
    }

    /// Marks a claimed nonce delivered with `answer` (its expiry kept).
    pub async fn deliver(&self, nonce_key: &str, answer: &[u8]) -> Result<(), StoreError> {
        let key = self.key(nonce_key);
        let mut value = Vec::with_capacity(answer.len() + 1);
        value.push(b'd');
        value.extend_from_slice(answer);
        let mut conn = self.inner.conn.clone();
        self.inner
            .run("replay", async {
                self.deliver
                    .key(&key)
                    .arg(value)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map(drop)
    }

    /// Forgets a nonce whose attempt failed, so a retry is processed again.
    pub async fn release(&self, nonce_key: &str) -> Result<(), StoreError> {
        let key = self.key(nonce_key);
        let mut conn = self.inner.conn.clone();
        self.inner
            .run("replay", async {
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map(drop)
    }
}
