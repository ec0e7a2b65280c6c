//! The v2 replay cache's shared half: (key id, nonce) claims in Redis, so
//! replicas agree on which export was already delivered (see
//! `ingest::replay`). A key `{prefix}n:{key id}|{nonce}` holds `P` + the
//! request's print (pending: the first request is running) or `D` + print +
//! the collector's answer (delivered), and expires with the replay window; a
//! failed attempt deletes it, so a retry is processed again. The print (a
//! digest of the signature) tells a retry of the very same request from
//! another request that reuses its nonce. Values an older replica wrote
//! (`p`, `d` + answer, no print) are still read, during a rolling upgrade.

use std::sync::Arc;

use redis::Script;

use super::Inner;
use crate::session::StoreError;

/// Claims the key (`SET P<print> NX EX ttl`) or returns what it holds, atomically.
const CLAIM: &str = r"
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
return false
";

/// Delivered, unless the key expired or was taken over meanwhile.
const DELIVER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
return 1
";

/// The length of a request print as stored (hex).
pub const PRINT_HEX_LEN: usize = 32;

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours: process it, then settle.
    Claimed,
    /// Another request (any replica) is running it; its print, when the
    /// replica that claimed it stored one.
    Pending { print: Option<String> },
    /// Delivered: the first request's print (when stored) and the stored
    /// answer (as given to [`SharedNonces::deliver`]).
    Delivered {
        print: Option<String>,
        answer: Vec<u8>,
    },
}

/// Splits a held value into its print and the rest (`None`: an older
/// replica's value without one).
fn split_print(rest: &[u8]) -> (Option<String>, &[u8]) {
    match rest.get(..PRINT_HEX_LEN) {
        Some(print) if print.iter().all(u8::is_ascii_hexdigit) => (
            Some(String::from_utf8_lossy(print).into_owned()),
            &rest[PRINT_HEX_LEN..],
        ),
        _ => (None, rest),
    }
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

    /// Claims `nonce_key` for `ttl_secs` for the request with `print`
    /// ([`PRINT_HEX_LEN`] hex characters), or says who holds it.
    pub async fn claim(
        &self,
        nonce_key: &str,
        print: &str,
        ttl_secs: u64,
    ) -> Result<Claim, StoreError> {
        let key = self.key(nonce_key);
        let mut conn = self.inner.conn.clone();
        let held: Option<Vec<u8>> = self
            .inner
            .run("replay", async {
                self.claim
                    .key(&key)
                    .arg(ttl_secs.max(1))
                    .arg(format!("P{print}"))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match held {
            None => Claim::Claimed,
            Some(value) => match value.split_first() {
                Some((b'D', rest)) => {
                    let (print, answer) = split_print(rest);
                    Claim::Delivered {
                        print,
                        answer: answer.to_vec(),
                    }
                }
                Some((b'd', answer)) => Claim::Delivered {
                    print: None,
                    answer: answer.to_vec(),
                },
                Some((b'P', rest)) => Claim::Pending {
                    print: split_print(rest).0,
                },
                _ => Claim::Pending { print: None },
            },
        })
    }

    /// Marks the nonce claimed by `print` delivered with `answer` (its expiry kept).
    pub async fn deliver(
        &self,
        nonce_key: &str,
        print: &str,
        answer: &[u8],
    ) -> Result<(), StoreError> {
        let key = self.key(nonce_key);
        let mut value = Vec::with_capacity(answer.len() + 1 + print.len());
        value.push(b'D');
        value.extend_from_slice(print.as_bytes());
        value.extend_from_slice(answer);
        let mut conn = self.inner.conn.clone();
        self.inner
            .run("replay", async {
                self.deliver
                    .key(&key)
                    .arg(value)
                    .arg(format!("P{print}"))
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
