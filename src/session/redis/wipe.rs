//! `DELETE /sessions`: every key under the prefix goes (SCAN + UNLINK in
//! batches, never one long-blocking command), then a new epoch tells every
//! replica to clear its local state. Holds the flush lock throughout, so no
//! write-behind batch lands in the middle.

use std::sync::atomic::Ordering;

use super::sync::{lock, PollState};
use super::Inner;
use crate::session::StoreError;

impl Inner {
    /// Deletes every key under the prefix (SCAN + UNLINK in batches), then
    /// starts a new epoch so every replica clears its local state.
    pub(super) async fn wipe(&self) -> Result<u64, StoreError> {
        let _flushing = self.flushing.lock().await;
        self.pending.clear();
        self.statics.clear();
        let pattern = format!("{}*", glob_escape(&self.redis.prefix));
        let sessions = self.key("s:");
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let mut conn = self.conn.clone();
            let (next, keys): (u64, Vec<String>) = self
                .run("wipe", async {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                deleted += keys.iter().filter(|k| k.starts_with(&sessions)).count() as u64;
                self.run("wipe", async {
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let epoch = new_epoch()?;
        let mut conn = self.conn.clone();
        self.run("wipe", async {
            redis::cmd("SET")
                .arg(self.key("epoch"))
                .arg(&epoch)
                .query_async::<()>(&mut conn)
                .await
        })
        .await?;
        self.local.clear();
        self.issued_live.store(0, Ordering::Relaxed);
        *lock(&self.poll) = PollState {
            epoch: Some(epoch),
            ..PollState::default()
        };
        Ok(deleted)
    }
}

/// `text` matched literally by a SCAN pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn new_epoch() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|err| StoreError(format!("OS RNG: {err}")))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(glob_escape("gw[1]*:"), "gw\\[1\\]\\*:");
    }
}
