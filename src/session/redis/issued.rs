//! Issued sessions in Redis, the source of truth: issue under the
//! per-address and per-user limits, check a token (one script round trip,
//! so a refresh or logout through any replica is seen by every other at
//! once), touch, extend, refresh, delete. Tokens travel only as the hex of
//! their SHA-256.

use super::record;
use super::{secs, Inner};
use crate::pipeline::client_ip;
use crate::session::{
    grants, Change, Changed, Grants, Issue, NewSession, PerUserLimit, StoreError, TokenCheck,
    TokenHash, TokenOwner, TokenUse,
};

impl Inner {
    pub(super) async fn issue(&self, new: NewSession) -> Result<Issue, StoreError> {
        let now = new.now;
        let settings = &self.settings;
        let expires_at = new.expires_at(settings);
        let address = new.client_ip.map(|ip| client_ip::limit_key(ip, 64));
        // Signed sessions are counted where they are seen: this replica's.
        let local_live = new
            .client_ip
            .map_or(0, |ip| self.local.live_for_address(ip, now));
        let metadata = match &new.metadata {
            Some(value) => serde_json::to_string(value)
                .map_err(|err| StoreError(format!("metadata: {err}")))?,
            None => String::new(),
        };
        let ip = new
            .client_ip
            .and_then(|ip| settings.store_ip.apply(ip))
            .unwrap_or_default();
        let refuse = settings.per_user_limit == PerUserLimit::Refuse;
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .run("issue", async {
                self.scripts
                    .issue
                    .arg(&self.redis.prefix)
                    .arg(&new.session_id)
                    .arg(hex::encode(new.token_hash.as_bytes()))
                    .arg(now)
                    .arg(expires_at)
                    .arg(self.idle_secs())
                    .arg(self.retention_secs())
                    .arg(self.token_keep_secs())
                    .arg(new.user_id.as_deref().unwrap_or_default())
                    .arg(settings.max_per_user)
                    .arg(if refuse { "1" } else { "0" })
                    .arg(address.map(|a| a.to_string()).unwrap_or_default())
                    .arg(settings.max_per_ip)
                    .arg(local_live)
                    .arg(&metadata)
                    .arg(&ip)
                    .arg(new.user_agent.as_deref().unwrap_or_default())
                    .arg(new.client_version.as_deref().unwrap_or_default())
                    .arg(new.key_id.as_deref().unwrap_or_default())
                    .arg(grants::join(&new.grants.roles).unwrap_or_default())
                    .arg(grants::join(&new.grants.permissions).unwrap_or_default())
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match reply.first().map(String::as_str) {
            Some("too_many_for_ip") => Ok(Issue::TooManyForIp),
            Some("too_many_for_user") => Ok(Issue::TooManyForUser),
            Some("created") if reply.len() >= 2 => {
                let evicted = reply[1].parse().unwrap_or(0);
                let fields = record::pairs(&reply[2..]);
                let record = record::decode(&new.session_id, &fields, self.idle_secs())
                    .ok_or_else(|| bad_reply("issue", &reply))?;
                Ok(Issue::Created {
                    record: Box::new(record),
                    evicted,
                })
            }
            _ => Err(bad_reply("issue", &reply)),
        }
    }

    /// Which session `token` opens; with `seen` (an `/auth` request) a live
    /// one is touched.
    pub(super) async fn check_token(
        &self,
        token: &TokenHash,
        now: i64,
        seen: Option<&TokenUse<'_>>,
    ) -> Result<TokenCheck, StoreError> {
        let (op, touch) = match seen {
            Some(_) => ("authenticate", "1"),
            None => ("find_token", "0"),
        };
        let ip = seen
            .and_then(|seen| self.settings.store_ip.apply(seen.client_ip))
            .unwrap_or_default();
        let user_agent = seen.and_then(|seen| seen.user_agent).unwrap_or_default();
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .run(op, async {
                self.scripts
                    .token
                    .arg(&self.redis.prefix)
                    .arg(hex::encode(token.as_bytes()))
                    .arg(now)
                    .arg(self.idle_secs())
                    .arg(self.retention_secs())
                    .arg(touch)
                    .arg(&ip)
                    .arg(user_agent)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let owner = |reply: &[String]| TokenOwner {
            session_id: reply[1].clone(),
            user_id: Some(reply[2].clone()).filter(|user| !user.is_empty()),
            grants: Grants::from_stored(
                reply.get(3).map(String::as_str),
                reply.get(4).map(String::as_str),
            ),
        };
        Ok(match (reply.first().map(String::as_str), reply.len()) {
            (Some("unknown"), _) => TokenCheck::Unknown,
            (Some("revoked"), 2..) => TokenCheck::Revoked {
                session_id: reply[1].clone(),
            },
            (Some("expired"), 3..) => TokenCheck::Expired(owner(&reply)),
            (Some("live"), 3..) => TokenCheck::Live(owner(&reply)),
            _ => return Err(bad_reply(op, &reply)),
        })
    }

    pub(super) async fn change(
        &self,
        id: &str,
        change: Change,
        now: i64,
    ) -> Result<Changed, StoreError> {
        // A signed session known only to this replica yet says NotIssued.
        self.flush_for(id).await?;
        // Seconds are bounded well below where Lua's doubles lose precision.
        let (op, arg) = match change {
            Change::Touch => ("touch", String::new()),
            Change::Extend(seconds) => ("extend", seconds.min(1 << 40).to_string()),
            Change::Refresh(token) => ("refresh", hex::encode(token.as_bytes())),
        };
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .run("change", async {
                self.scripts
                    .change
                    .arg(&self.redis.prefix)
                    .arg(id)
                    .arg(now)
                    .arg(self.idle_secs())
                    .arg(self.retention_secs())
                    .arg(op)
                    .arg(&arg)
                    .arg(secs(self.settings.max_lifetime))
                    .arg(self.token_keep_secs())
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match reply.first().map(String::as_str) {
            Some("unknown") => Ok(Changed::Unknown),
            Some("not_issued") => Ok(Changed::NotIssued),
            Some("expired") => Ok(Changed::Expired),
            Some("done") => {
                let fields = record::pairs(&reply[1..]);
                record::decode(id, &fields, self.idle_secs())
                    .map(|record| Changed::Done(Box::new(record)))
                    .ok_or_else(|| bad_reply("change", &reply))
            }
            _ => Err(bad_reply("change", &reply)),
        }
    }

    pub(super) async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.flush_for(id).await?;
        let mut conn = self.conn.clone();
        let deleted: i64 = self
            .run("delete", async {
                self.scripts
                    .delete
                    .arg(&self.redis.prefix)
                    .arg(id)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(deleted == 1)
    }

    pub(super) async fn delete_user(&self, user: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let deleted: u64 = self
            .run("delete_user", async {
                self.scripts
                    .delete_user
                    .arg(&self.redis.prefix)
                    .arg(user)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(deleted)
    }
}

/// A script answered something it never answers (a version mismatch, or
/// a damaged record). Only the outcome word is shown: the rest may be a
/// record.
fn bad_reply(op: &str, reply: &[String]) -> StoreError {
    let outcome = reply.first().map_or("nothing", String::as_str);
    StoreError(format!("redis {op}: unexpected reply {outcome:?}"))
}
