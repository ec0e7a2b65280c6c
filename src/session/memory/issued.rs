//! Issued sessions in the memory store: create under the per-user limit,
//! find by token hash, touch, extend, refresh, delete.
//!
//! Lock order, everywhere: a user's id list, then a record. A record's lock
//! is held while its token index entry changes, so a refresh and an
//! `/auth` with the old token cannot interleave: once `refresh` returns, the
//! old token opens nothing.

use std::sync::{Arc, Mutex};

use super::key::KeyRef;
use super::{lock, secs, Entry, MemoryStore, TokenTarget};
use crate::session::SessionGate;
use crate::session::{
    petname, Change, Changed, Issue, NewSession, PerUserLimit, SessionKind, SessionRecord,
    TokenCheck, TokenHash, TokenOwner, TokenUse,
};

impl MemoryStore {
    pub(crate) fn issue_now(&self, new: NewSession) -> Issue {
        let now = new.now;
        let id: Arc<str> = Arc::from(new.session_id.as_str());
        if let Some(ip) = new.client_ip {
            let key = KeyRef::new(&new.session_id).to_owned();
            if self.admit(ip, &key, now).is_err() {
                return Issue::TooManyForIp;
            }
        }
        let user_list = new
            .user_id
            .as_deref()
            .map(|user| self.per_user.get_with(Arc::from(user), Default::default));
        let mut held = user_list.as_deref().map(lock);
        let mut evicted = 0;
        if let Some(held) = held.as_mut() {
            held.retain(|other| self.is_live(other, now));
            while held.len() >= self.settings.max_per_user {
                if self.settings.per_user_limit == PerUserLimit::Refuse {
                    return Issue::TooManyForUser;
                }
                let oldest = held.remove(0);
                if self.delete_now(&oldest) {
                    evicted += 1;
                }
            }
            held.push(id.clone());
        }
        let record = self.issued_record(&new);
        self.index_token(new.token_hash, id.clone(), self.token_until(&record), now);
        let entry = Entry {
            record: record.clone(),
            token: Some(new.token_hash),
        };
        self.sessions.insert(id, Arc::new(Mutex::new(entry)));
        Issue::Created {
            record: Box::new(record),
            evicted,
        }
    }

    fn issued_record(&self, new: &NewSession) -> SessionRecord {
        let now = new.now;
        SessionRecord {
            session_id: new.session_id.clone(),
            kind: SessionKind::Issued,
            pet_name: petname::pet_name(&new.session_id),
            first_seen: now,
            last_seen: now,
            expires_at: new.expires_at(&self.settings),
            idle_expires_at: Some(now.saturating_add(self.idle_secs())),
            user_id: new.user_id.clone(),
            metadata: new.metadata.clone(),
            grants: new.grants.clone(),
            requests: 0,
            bytes: 0,
            client_ip: new
                .client_ip
                .and_then(|ip| self.settings.store_ip.apply(ip)),
            user_agent: new.user_agent.clone(),
            client_version: new.client_version.clone(),
            key_id: new.key_id.clone(),
            revoked_at: None,
        }
    }

    /// Which session `token` opens; with `seen` (an `/auth` request) a live
    /// one is touched.
    pub(crate) fn check_token(
        &self,
        token: &TokenHash,
        now: i64,
        seen: Option<&TokenUse<'_>>,
    ) -> TokenCheck {
        let Some(TokenTarget { id, .. }) = self.tokens.get(token) else {
            return TokenCheck::Unknown;
        };
        if self.is_revoked(&id, now) {
            return TokenCheck::Revoked {
                session_id: id.to_string(),
            };
        }
        let Some(record) = self.sessions.get(&id) else {
            return TokenCheck::Unknown;
        };
        let mut entry = lock(&record);
        // The index may lag a refresh or a reused id: the record decides.
        if entry.token.as_ref() != Some(token) {
            return TokenCheck::Unknown;
        }
        let owner = TokenOwner {
            session_id: entry.record.session_id.clone(),
            user_id: entry.record.user_id.clone(),
            grants: entry.record.grants.clone(),
        };
        if !entry.record.is_live(now) {
            return TokenCheck::Expired(owner);
        }
        if let Some(seen) = seen {
            let record = &mut entry.record;
            self.touch(record, now);
            record.requests += 1;
            record.client_ip = self.settings.store_ip.apply(seen.client_ip);
            if record.user_agent.as_deref() != seen.user_agent {
                record.user_agent = seen.user_agent.map(str::to_string);
            }
        }
        TokenCheck::Live(owner)
    }

    pub(crate) fn change_now(&self, id: &str, change: Change, now: i64) -> Changed {
        let Some(record) = self.sessions.get(id) else {
            // A signed session has no token, idle timer or lifetime to change.
            if self.signed.get(id, now).is_some() {
                return Changed::NotIssued;
            }
            return Changed::Unknown;
        };
        let mut entry = lock(&record);
        if entry.record.kind != SessionKind::Issued {
            return Changed::NotIssued;
        }
        if !entry.record.is_live(now) {
            return Changed::Expired;
        }
        match change {
            Change::Touch => {}
            Change::Extend(seconds) => {
                let record = &mut entry.record;
                let cap = record
                    .first_seen
                    .saturating_add(secs(self.settings.max_lifetime));
                let extended = record
                    .expires_at
                    .saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
                record.expires_at = extended.min(cap).max(record.expires_at);
                if let Some(token) = entry.token {
                    let until = self.token_until(&entry.record);
                    self.index_token(token, Arc::from(id), until, now);
                }
            }
            Change::Refresh(new_token) => {
                if let Some(old) = entry.token.replace(new_token) {
                    self.tokens.invalidate(&old);
                }
                let until = self.token_until(&entry.record);
                self.index_token(new_token, Arc::from(id), until, now);
            }
        }
        self.touch(&mut entry.record, now);
        Changed::Done(Box::new(entry.record.clone()))
    }

    /// Removes a session and its token; false when the id is unknown.
    pub(crate) fn delete_now(&self, id: &str) -> bool {
        if self.signed.remove(id) {
            return true;
        }
        let Some(record) = self.sessions.remove(id) else {
            return false;
        };
        if let Some(token) = lock(&record).token {
            self.tokens.invalidate(&token);
        }
        true
    }

    pub(crate) fn delete_user_now(&self, user: &str) -> u64 {
        let held = self.per_user.remove(user);
        let _held = held.as_deref().map(lock);
        // The index may have lost ids to capacity: the records decide.
        let ids: Vec<Arc<str>> = self
            .sessions
            .iter()
            .filter(|(_, record)| lock(record).record.user_id.as_deref() == Some(user))
            .map(|(id, _)| Arc::clone(&*id))
            .collect();
        ids.iter().filter(|id| self.delete_now(id)).count() as u64
    }

    /// The idle timer restarts now.
    fn touch(&self, record: &mut SessionRecord, now: i64) {
        record.last_seen = now;
        record.idle_expires_at = Some(now.saturating_add(self.idle_secs()));
    }
}
