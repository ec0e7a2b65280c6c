//! Administration of the embedded store: read, revoke, list, count, delete
//! a user's sessions, wipe. Answers at once (the futures are ready).

use super::*;

impl SessionAdmin for MemoryStore {
    fn lookup<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        let record = self.signed.get(session_id, now).or_else(|| {
            let entry = self.sessions.get(session_id)?;
            let record = lock(&entry).record.clone();
            Some(record)
        });
        let found = match record {
            None => Lookup::Unknown,
            Some(record) => {
                if record.is_live(now) {
                    Lookup::Live(record)
                } else {
                    Lookup::Expired(record)
                }
            }
        };
        answered(Ok(found))
    }

    fn revoke<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<SessionKind>, StoreError>> {
        answered(Ok(self.revoke_now(session_id, now)))
    }

    fn list<'a>(
        &'a self,
        filter: &'a ListFilter,
        now: i64,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        let mut matching: Vec<SessionRecord> = self
            .snapshot(now)
            .into_iter()
            .filter(|r| filter.kind.is_none_or(|kind| r.kind == kind))
            .filter(|r| {
                filter
                    .user
                    .as_deref()
                    .is_none_or(|user| r.user_id.as_deref() == Some(user))
            })
            .filter(|r| {
                filter
                    .active
                    .is_none_or(|active| r.is_active(now) == active)
            })
            .filter(|r| {
                filter
                    .cursor
                    .as_deref()
                    .is_none_or(|after| r.session_id.as_str() > after)
            })
            .collect();
        matching.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        let more = matching.len() > filter.limit;
        matching.truncate(filter.limit);
        let next_cursor = more
            .then(|| matching.last().map(|r| r.session_id.clone()))
            .flatten();
        answered(Ok(Page {
            sessions: matching,
            next_cursor,
        }))
    }

    fn stats(&self, now: i64) -> BoxFuture<'_, Result<Stats, StoreError>> {
        let mut stats = Stats::zero();
        for record in self.snapshot(now) {
            stats.count(record, now);
        }
        answered(Ok(stats))
    }

    fn active(&self, now: i64) -> Vec<(SessionKind, u64)> {
        let issued = self
            .sessions
            .iter()
            .filter(|(_, record)| lock(record).record.is_active(now))
            .count() as u64;
        vec![
            (SessionKind::Signed, self.signed.active(now)),
            (SessionKind::Issued, issued),
        ]
    }

    fn delete_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        answered(Ok(self.delete_user_now(user)))
    }

    fn wipe(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        answered(Ok(self.wipe_now()))
    }
}

impl MemoryStore {
    /// [`SessionAdmin::revoke`], answered at once.
    pub(crate) fn revoke_now(&self, session_id: &str, now: i64) -> Option<SessionKind> {
        let until = now.saturating_add(secs(self.settings.revocation_ttl));
        let kind = if self.signed.revoke(session_id, now) {
            Some(SessionKind::Signed)
        } else if let Some(record) = self.sessions.remove(session_id) {
            // Deleted, but its token index entry stays as long as the
            // revocation: the token is then answered `session_revoked`, not
            // `invalid_session`.
            if let Some(token) = lock(&record).token {
                self.index_token(token, Arc::from(session_id), until, now);
            }
            Some(SessionKind::Issued)
        } else {
            None
        };
        if kind.is_some() {
            self.any_revoked.store(true, Ordering::Release);
            self.revoked.insert(Arc::from(session_id), until);
        }
        kind
    }

    /// [`SessionAdmin::wipe`], answered at once.
    pub(crate) fn wipe_now(&self) -> u64 {
        let count = self.sessions.iter().count() as u64 + self.signed.len() as u64;
        self.clear();
        count
    }
}
