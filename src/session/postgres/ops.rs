//! The session API on PostgreSQL: issued sessions (issue, token checks,
//! change, logout, a user's sessions), reads (lookup, list, stats) and the
//! operator's revoke and wipe. Each change is one function call (one
//! round trip, atomic); reads first flush this replica's pending deltas (of
//! that session, or all), so a replica reads its own writes. Tokens travel
//! only as their SHA-256.

use std::sync::atomic::Ordering;

use super::rows::{record, records};
use super::{secs, sql, Inner};
use crate::pipeline::client_ip;
use crate::session::seal::{self, Private};
use crate::session::{
    grants, Change, Changed, Grants, Issue, ListFilter, Lookup, NewSession, Page, PerUserLimit,
    SessionKind, Stats, StoreError, TokenCheck, TokenHash, TokenOwner, TokenUse,
};

fn bad_reply(op: &str) -> StoreError {
    StoreError(format!("postgres {op}: unexpected reply"))
}

impl Inner {
    /// How long a token row outlives its session: as long as a revocation
    /// may need it.
    fn token_keep_secs(&self) -> i64 {
        let settings = &self.settings;
        secs(settings.max_lifetime.max(settings.revocation_ttl))
            .saturating_add(self.retention_secs())
    }

    pub(super) async fn issue(&self, new: NewSession) -> Result<Issue, StoreError> {
        let now = new.now;
        let settings = &self.settings;
        let expires_at = new.expires_at(settings);
        let roles = grants::join(&new.grants.roles);
        let permissions = grants::join(&new.grants.permissions);
        let address = new
            .client_ip
            .map(|ip| client_ip::limit_key(ip, 64).to_string());
        // Signed sessions are counted where they are seen: this replica's.
        let local_live = new
            .client_ip
            .map_or(0, |ip| self.local.live_for_address(ip, now)) as i64;
        let metadata = match &new.metadata {
            Some(value) => Some(
                serde_json::to_string(value)
                    .map_err(|err| StoreError(format!("metadata: {err}")))?,
            ),
            None => None,
        };
        let ip = new.client_ip.and_then(|ip| settings.store_ip.apply(ip));
        // With encryption: the private fields sealed under the session id,
        // the user and the address key sealed so they are still found.
        let sealer = self.sealer.as_deref();
        let (seal, private) = seal::to_row(
            sealer,
            &new.session_id,
            Private {
                client_ip: ip,
                user_agent: new.user_agent.clone(),
                user_id: new.user_id.clone(),
                metadata,
            },
        );
        let (ip, metadata) = (private.client_ip, private.metadata);
        let (user, agent) = (private.user_id, private.user_agent);
        let address = match sealer {
            Some(sealer) => address.map(|a| sealer.seal_lookup("ip_key", &a)),
            None => address,
        };
        let refuse = settings.per_user_limit == PerUserLimit::Refuse;
        let token = new.token_hash.as_bytes().to_vec();
        let (idle, retention, keep) = (
            self.idle_secs(),
            self.retention_secs(),
            self.token_keep_secs(),
        );
        let max_user = settings.max_per_user as i64;
        let max_ip = settings.max_per_ip as i64;
        let row = self
            .run("issue", |client| {
                let new = &new;
                let (token, address, metadata, ip) = (&token, &address, &metadata, &ip);
                let (roles, permissions) = (&roles, &permissions);
                let (user, agent, seal) = (&user, &agent, &seal);
                async move {
                    client
                        .query_one(
                            sql::ISSUE,
                            &[
                                &new.session_id,
                                token,
                                &now,
                                &expires_at,
                                &idle,
                                &retention,
                                &keep,
                                user,
                                &max_user,
                                &refuse,
                                address,
                                &max_ip,
                                &local_live,
                                metadata,
                                ip,
                                agent,
                                &new.client_version,
                                &new.key_id,
                                roles,
                                permissions,
                                seal,
                            ],
                        )
                        .await
                }
            })
            .await?;
        let outcome: &str = row.try_get(0).map_err(|_| bad_reply("issue"))?;
        match outcome {
            "too_many_for_ip" => Ok(Issue::TooManyForIp),
            "too_many_for_user" => Ok(Issue::TooManyForUser),
            "created" => {
                let evicted: i64 = row.try_get(1).map_err(|_| bad_reply("issue"))?;
                let Lookup::Live(record) = self.read(&new.session_id, now).await? else {
                    return Err(bad_reply("issue"));
                };
                Ok(Issue::Created {
                    record: Box::new(record),
                    evicted: usize::try_from(evicted).unwrap_or(0),
                })
            }
            _ => Err(bad_reply("issue")),
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
        let op = if seen.is_some() {
            "authenticate"
        } else {
            "find_token"
        };
        let touch = seen.is_some();
        let clear_ip = seen.and_then(|seen| self.settings.store_ip.apply(seen.client_ip));
        let clear_agent = seen.and_then(|seen| seen.user_agent);
        // Sealed, the client is written after the check, under the id it names.
        let (ip, agent) = match &self.sealer {
            Some(_) => (None, None),
            None => (clear_ip.clone(), clear_agent),
        };
        let hash = token.as_bytes().to_vec();
        let (idle, retention) = (self.idle_secs(), self.retention_secs());
        let row = self
            .run(op, |client| {
                let (hash, ip) = (&hash, &ip);
                async move {
                    client
                        .query_one(
                            sql::TOKEN,
                            &[hash, &now, &idle, &retention, &touch, ip, &agent],
                        )
                        .await
                }
            })
            .await?;
        let state: String = row.try_get(0).map_err(|_| bad_reply(op))?;
        let id: Option<String> = row.try_get(1).map_err(|_| bad_reply(op))?;
        let user_id: Option<String> = row.try_get(2).map_err(|_| bad_reply(op))?;
        let roles: Option<&str> = row.try_get(3).map_err(|_| bad_reply(op))?;
        let permissions: Option<&str> = row.try_get(4).map_err(|_| bad_reply(op))?;
        let user_id = match (&self.sealer, user_id) {
            (Some(sealer), Some(user)) if sealer.names_a_key(&user) => Some(
                sealer
                    .open("", "user_id", &user)
                    .map_err(|err| StoreError(format!("postgres {op}: {err}")))?,
            ),
            (_, user) => user,
        };
        if let (Some(sealer), true, "live", Some(id)) =
            (&self.sealer, touch, state.as_str(), id.as_deref())
        {
            self.touch_sealed(sealer, id, clear_ip, clear_agent).await;
        }
        let owner = |session_id| TokenOwner {
            session_id,
            user_id,
            grants: Grants::from_stored(roles, permissions),
        };
        Ok(match (state.as_str(), id) {
            ("unknown", _) => TokenCheck::Unknown,
            ("revoked", Some(session_id)) => TokenCheck::Revoked { session_id },
            ("expired", Some(session_id)) => TokenCheck::Expired(owner(session_id)),
            ("live", Some(session_id)) => TokenCheck::Live(owner(session_id)),
            _ => return Err(bad_reply(op)),
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
        let (op, seconds, token) = match change {
            Change::Touch => ("touch", 0i64, None),
            Change::Extend(seconds) => ("extend", seconds.min(1 << 40) as i64, None),
            Change::Refresh(token) => ("refresh", 0, Some(token.as_bytes().to_vec())),
        };
        let (idle, retention, keep) = (
            self.idle_secs(),
            self.retention_secs(),
            self.token_keep_secs(),
        );
        let max_life = secs(self.settings.max_lifetime);
        let row = self
            .run("change", |client| {
                let token = &token;
                async move {
                    client
                        .query_one(
                            sql::CHANGE,
                            &[
                                &id, &now, &idle, &retention, &op, &seconds, token, &max_life,
                                &keep,
                            ],
                        )
                        .await
                }
            })
            .await?;
        let outcome: String = row.try_get(0).map_err(|_| bad_reply("change"))?;
        match outcome.as_str() {
            "unknown" => Ok(Changed::Unknown),
            "not_issued" => Ok(Changed::NotIssued),
            "expired" => Ok(Changed::Expired),
            "done" => match self.read(id, now).await? {
                Lookup::Live(record) => Ok(Changed::Done(Box::new(record))),
                _ => Err(bad_reply("change")),
            },
            _ => Err(bad_reply("change")),
        }
    }

    pub(super) async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.flush_for(id).await?;
        self.run("delete", |client| async move {
            client.query_one(sql::DELETE, &[&id]).await?.try_get(0)
        })
        .await
    }

    /// Every row of `user`: in clear, and sealed under each storage key.
    pub(super) async fn delete_user(&self, user: &str) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for value in seal::user_columns(self.sealer.as_deref(), user) {
            let deleted: i64 = self
                .run("delete_user", |client| {
                    let value = &value;
                    async move {
                        client
                            .query_one(sql::DELETE_USER, &[value])
                            .await?
                            .try_get(0)
                    }
                })
                .await?;
            total += u64::try_from(deleted).unwrap_or(0);
        }
        Ok(total)
    }

    pub(super) async fn lookup(&self, id: &str, now: i64) -> Result<Lookup, StoreError> {
        self.flush_for(id).await?;
        self.read(id, now).await
    }

    /// One record, without flushing first.
    async fn read(&self, id: &str, now: i64) -> Result<Lookup, StoreError> {
        let row = self
            .run("lookup", |client| async move {
                client.query_opt(sql::LOOKUP, &[&id, &now]).await
            })
            .await?;
        let found = match row {
            Some(row) => record(&row, self.idle_secs(), self.sealer.as_deref())?,
            None => None,
        };
        Ok(match found {
            None => Lookup::Unknown,
            Some(record) if record.is_live(now) => Lookup::Live(record),
            Some(record) => Lookup::Expired(record),
        })
    }

    pub(super) async fn revoke(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<SessionKind>, StoreError> {
        self.flush_for(id).await?;
        let until = now.saturating_add(secs(self.settings.revocation_ttl));
        // The token row is answered "revoked" as long as the revocation is
        // kept, then pruned (not kept for max_lifetime with its session).
        let keep = secs(self.settings.revocation_ttl).max(1);
        let kind: Option<String> = self
            .run("revoke", |client| async move {
                client
                    .query_one(sql::REVOKE, &[&id, &now, &until, &keep])
                    .await?
                    .try_get(0)
            })
            .await?;
        let kind = match kind.as_deref() {
            None => return Ok(None),
            Some("issued") => SessionKind::Issued,
            Some(_) => SessionKind::Signed,
        };
        // Refused here at once; other replicas pick it up at their next poll.
        self.local.remember_revocation(id, now, until);
        Ok(Some(kind))
    }

    pub(super) async fn list(&self, filter: &ListFilter, now: i64) -> Result<Page, StoreError> {
        self.flush().await?;
        let kind = filter.kind.map(SessionKind::as_str);
        let idle = self.idle_secs();
        // One more than asked tells whether there is a next page.
        let limit = i64::try_from(filter.limit.saturating_add(1)).unwrap_or(i64::MAX);
        let users = filter
            .user
            .as_deref()
            .map(|user| seal::user_columns(self.sealer.as_deref(), user));
        let rows = self
            .run("list", |client| {
                let users = &users;
                async move {
                    client
                        .query(
                            sql::LIST,
                            &[
                                &filter.cursor,
                                &kind,
                                users,
                                &filter.active,
                                &now,
                                &idle,
                                &limit,
                            ],
                        )
                        .await
                }
            })
            .await?;
        let mut sessions = records(&rows, idle, self.sealer.as_deref())?;
        let more = sessions.len() > filter.limit;
        sessions.truncate(filter.limit);
        let next_cursor = more
            .then(|| sessions.last().map(|r| r.session_id.clone()))
            .flatten();
        Ok(Page {
            sessions,
            next_cursor,
        })
    }

    pub(super) async fn stats(&self, now: i64) -> Result<Stats, StoreError> {
        self.flush().await?;
        let rows = self
            .run("stats", |client| async move {
                client.query(sql::ALL, &[&now]).await
            })
            .await?;
        let mut stats = Stats::zero();
        let idle = self.idle_secs();
        for record in records(&rows, idle, self.sealer.as_deref())? {
            stats.count(record, now);
        }
        Ok(stats)
    }

    /// Deletes everything and starts a new epoch, so every replica clears
    /// its local state at its next poll. Holds the flush lock throughout.
    pub(super) async fn wipe(&self) -> Result<u64, StoreError> {
        let _flushing = self.flushing.lock().await;
        self.pending.clear();
        self.statics.clear();
        let deleted: i64 = self
            .run("wipe", |client| async move {
                client.query_one(sql::WIPE, &[]).await?.try_get(0)
            })
            .await?;
        self.local.clear();
        self.issued_live.store(0, Ordering::Relaxed);
        // Our own wipe: the next poll must not clear again, and the log
        // starts over from its first entry.
        *super::sync_lock(&self.epoch) = None;
        self.seq.store(0, Ordering::Relaxed);
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}
