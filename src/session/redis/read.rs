//! Reads and revocation: `lookup`, `list`, `stats`, `revoke`. Each first
//! flushes this replica's pending deltas (of that session, or all), so a
//! replica reads its own writes; other replicas' deltas arrive within
//! their flush interval.
//! Listing pages through the `ids` index in id order (ZRANGEBYLEX); stats
//! read every record (admin only, O(sessions)).

use super::record::{self, Fields};
use super::{secs, Inner};
use crate::session::{ListFilter, Lookup, Page, SessionKind, SessionRecord, Stats, StoreError};

/// Ids read from the index per round trip.
const CHUNK: usize = 500;

impl Inner {
    pub(super) async fn lookup(&self, id: &str, now: i64) -> Result<Lookup, StoreError> {
        self.flush_for(id).await?;
        let mut conn = self.conn.clone();
        let key = self.key(&format!("s:{id}"));
        let fields: Fields = self
            .run("lookup", async {
                redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await
            })
            .await?;
        Ok(match record::decode(id, &fields, self.idle_secs()) {
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
        // The token key is answered "revoked" as long as the revocation is
        // kept, then forgotten (not kept for max_lifetime with its session).
        let keep = secs(self.settings.revocation_ttl).max(1);
        let mut conn = self.conn.clone();
        let kind: Option<String> = self
            .run("revoke", async {
                self.scripts
                    .revoke
                    .arg(&self.redis.prefix)
                    .arg(id)
                    .arg(now)
                    .arg(until)
                    .arg(keep)
                    .arg(super::sync::REVLOG_CAP)
                    .invoke_async(&mut conn)
                    .await
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
        let mut sessions = Vec::new();
        let mut after = filter.cursor.clone();
        // A user's sessions come from the user's index, the rest from `ids`.
        let user_ids = match &filter.user {
            Some(user) => Some(self.user_ids(user).await?),
            None => None,
        };
        loop {
            let ids = match &user_ids {
                Some(all) => all
                    .iter()
                    .filter(|id| after.as_deref().is_none_or(|a| id.as_str() > a))
                    .take(CHUNK)
                    .cloned()
                    .collect(),
                None => self.ids_after(after.as_deref(), CHUNK).await?,
            };
            let exhausted = ids.len() < CHUNK;
            let records = self.records(&ids).await?;
            for record in records.into_iter().flatten() {
                let keep = filter.kind.is_none_or(|kind| record.kind == kind)
                    && filter
                        .user
                        .as_deref()
                        .is_none_or(|user| record.user_id.as_deref() == Some(user))
                    && filter
                        .active
                        .is_none_or(|active| record.is_active(now) == active);
                if keep {
                    sessions.push(record);
                }
            }
            after = ids.last().cloned().or(after);
            if sessions.len() > filter.limit || exhausted {
                break;
            }
        }
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
        let mut stats = Stats::zero();
        let mut after: Option<String> = None;
        loop {
            let ids = self.ids_after(after.as_deref(), CHUNK).await?;
            for record in self.records(&ids).await?.into_iter().flatten() {
                stats.count(record, now);
            }
            if ids.len() < CHUNK {
                return Ok(stats);
            }
            after = ids.last().cloned();
        }
    }

    /// Up to `count` ids after `after`, in order.
    async fn ids_after(
        &self,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<String>, StoreError> {
        let start = after.map_or_else(|| "-".to_string(), |id| format!("({id}"));
        let mut conn = self.conn.clone();
        self.run("list", async {
            redis::cmd("ZRANGEBYLEX")
                .arg(self.key("ids"))
                .arg(&start)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(count)
                .query_async(&mut conn)
                .await
        })
        .await
    }

    async fn user_ids(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<String> = self
            .run("list", async {
                redis::cmd("ZRANGE")
                    .arg(self.key(&format!("u:{user}")))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        ids.sort();
        Ok(ids)
    }

    /// The records of `ids` (one pipeline); an id whose record expired out
    /// of Redis is `None`, and is dropped from the index.
    async fn records(&self, ids: &[String]) -> Result<Vec<Option<SessionRecord>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.key(&format!("s:{id}")));
        }
        let mut conn = self.conn.clone();
        let all: Vec<Fields> = self
            .run("list", async { pipe.query_async(&mut conn).await })
            .await?;
        let idle = self.idle_secs();
        let records: Vec<Option<SessionRecord>> = ids
            .iter()
            .zip(&all)
            .map(|(id, fields)| record::decode(id, fields, idle))
            .collect();
        let gone: Vec<&String> = ids
            .iter()
            .zip(&all)
            .filter(|(_, fields)| fields.is_empty())
            .map(|(id, _)| id)
            .collect();
        if !gone.is_empty() {
            let mut conn = self.conn.clone();
            self.run("list", async {
                redis::cmd("ZREM")
                    .arg(self.key("ids"))
                    .arg(&gone)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await?;
        }
        Ok(records)
    }

    /// How long a token key outlives its session: as long as a revocation
    /// may need it (memory bound, as in the memory store).
    pub(super) fn token_keep_secs(&self) -> i64 {
        let settings = &self.settings;
        secs(settings.max_lifetime.max(settings.revocation_ttl))
            .saturating_add(self.retention_secs())
    }
}
