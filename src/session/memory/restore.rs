//! What a persistent store needs of the memory store it keeps for the hot
//! path: put back what it loaded on open (sessions, tokens, revocations,
//! static sightings), and read one session as it must be written (its record
//! and, for an issued one, its token hash). The memory store itself never
//! calls these.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{lock, Entry, MemoryStore};
use crate::session::{SessionKind, SessionRecord, StaticSighting, TokenHash};

impl MemoryStore {
    /// Puts back a session loaded from disk (either kind), unless it is
    /// dead at `now`. An issued one joins its user's list (load them oldest
    /// first) and its token opens it again.
    pub(crate) fn restore(&self, record: SessionRecord, token: Option<TokenHash>, now: i64) {
        match record.kind {
            SessionKind::Signed => self.signed.restore(&record, now),
            SessionKind::Issued => {
                let retention = super::secs(self.settings.expired_retention);
                if record.live_until().saturating_add(retention) < now {
                    return;
                }
                let id: Arc<str> = Arc::from(record.session_id.as_str());
                if let Some(user) = record.user_id.as_deref() {
                    let held = self.per_user.get_with(Arc::from(user), Default::default);
                    let mut held = lock(&held);
                    if !held.contains(&id) {
                        held.push(id.clone());
                    }
                }
                if let Some(token) = token {
                    self.index_token(token, id.clone(), self.token_until(&record), now);
                }
                self.sessions
                    .insert(id, Arc::new(Mutex::new(Entry { record, token })));
            }
        }
    }

    /// A token index entry without its session: the session was revoked,
    /// and the token must still be answered `session_revoked` until Unix
    /// second `until` (its revocation's end).
    pub(crate) fn restore_token(&self, token: TokenHash, session_id: &str, until: i64, now: i64) {
        self.index_token(token, Arc::from(session_id), until, now);
    }

    /// A first sighting of a static header set, by its digest, for what is
    /// left of its `max_age`.
    pub(crate) fn restore_static(
        &self,
        digest: [u8; 32],
        sighting: StaticSighting,
        left: Duration,
    ) {
        self.statics.restore(digest, sighting, left);
    }

    /// Session `id` as a persistent store writes it: the record (a signed
    /// one until it is dead at `now`) and an issued one's token hash.
    pub(crate) fn persisted(
        &self,
        id: &str,
        now: i64,
    ) -> Option<(SessionRecord, Option<TokenHash>)> {
        if let Some(record) = self.signed.get(id, now) {
            return Some((record, None));
        }
        let entry = self.sessions.get(id)?;
        let entry = lock(&entry);
        Some((entry.record.clone(), entry.token))
    }
}
