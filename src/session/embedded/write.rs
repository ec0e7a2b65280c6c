//! Write-through: every change the session API makes (issue, extend,
//! refresh, delete, revoke, a user's sessions, wipe) is applied to the
//! memory store and committed to disk before the call returns, all under
//! the connection lock, so the write-behind flush never interleaves with it.
//! These run on a blocking thread ([`super::blocking`]), never on a runtime
//! worker.
//!
//! When the commit fails the change stays in force in this process (a
//! revocation is enforced at once) and the caller gets a [`StoreError`]
//! (503 `store_unavailable`): the operator learns it may not survive a
//! restart.

use rusqlite::Connection;

use super::{lock, rows, Inner};
use crate::session::{
    Change, Changed, Issue, NewSession, SessionKind, StoreError, TokenCheck, TokenHash,
};

impl Inner {
    /// Applies `change` to memory and commits `write` in one transaction,
    /// both under the connection lock (the flush takes it too).
    fn through<T>(
        &self,
        op: &'static str,
        change: impl FnOnce() -> T,
        write: impl FnOnce(&T, &Connection) -> rusqlite::Result<()>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let mut conn = lock(&self.db);
        let changed = change();
        let outcome = conn.transaction().and_then(|tx| {
            write(&changed, &tx)?;
            tx.commit()
        });
        if outcome.is_err() {
            // Rolled back: what the rows hold is no longer known.
            self.written.forget_all();
        }
        drop(conn);
        self.observe_duration(op, started);
        outcome.map_err(|err| self.failed(op, err))?;
        Ok(changed)
    }

    pub(super) fn issue(&self, new: NewSession) -> Result<Issue, StoreError> {
        let token = new.token_hash;
        let user = new.user_id.clone();
        let now = new.now;
        let retention = self.retention_secs();
        self.through(
            "issue",
            || self.local.issue_now(new),
            |issued, conn| {
                let Issue::Created { record, evicted } = issued else {
                    return Ok(());
                };
                let sealer = self.sealer.as_ref();
                self.written
                    .put(conn, record, Some(&token), retention, sealer)?;
                if let (Some(user), true) = (user.as_deref(), *evicted > 0) {
                    self.drop_forgotten(conn, user, now)?;
                }
                Ok(())
            },
        )
    }

    /// Deletes `user`'s rows the memory store no longer holds (the oldest
    /// sessions an issue evicted for the per-user limit).
    fn drop_forgotten(&self, conn: &Connection, user: &str, now: i64) -> rusqlite::Result<()> {
        let ids: Vec<String> = conn
            .prepare_cached("SELECT id FROM sessions WHERE user_id = ?1")?
            .query_map([self.user_column(user)], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in ids {
            if self.local.persisted(&id, now).is_none() {
                self.delete_row(conn, &id)?;
            }
        }
        Ok(())
    }

    pub(super) fn change(&self, id: &str, change: Change, now: i64) -> Result<Changed, StoreError> {
        let retention = self.retention_secs();
        self.through(
            "change",
            || self.local.change_now(id, change, now),
            |changed, conn| match changed {
                Changed::Done(_) => match self.local.persisted(id, now) {
                    Some((record, token)) => self.written.put(
                        conn,
                        &record,
                        token.as_ref(),
                        retention,
                        self.sealer.as_ref(),
                    ),
                    None => Ok(()),
                },
                _ => Ok(()),
            },
        )
    }

    pub(super) fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.through(
            "delete",
            || self.local.delete_now(id),
            |deleted, conn| {
                if *deleted {
                    self.delete_row(conn, id)
                } else {
                    Ok(())
                }
            },
        )
    }

    pub(super) fn revoke(&self, id: &str, now: i64) -> Result<Option<SessionKind>, StoreError> {
        let retention = self.retention_secs();
        let until = now.saturating_add(super::secs(self.settings.revocation_ttl));
        let (kind, _) = self.through(
            "revoke",
            || {
                // An issued session's token, read before the revocation deletes it.
                let token = self.local.persisted(id, now).and_then(|(_, token)| token);
                (self.local.revoke_now(id, now), token)
            },
            |(kind, token), conn| {
                match kind {
                    None => return Ok(()),
                    Some(SessionKind::Signed) => {
                        if let Some((record, _)) = self.local.persisted(id, now) {
                            let sealer = self.sealer.as_ref();
                            self.written.put(conn, &record, None, retention, sealer)?;
                        }
                    }
                    Some(SessionKind::Issued) => {
                        self.delete_row(conn, id)?;
                        if let Some(token) = token.as_ref() {
                            rows::put_token(conn, token, id, until)?;
                        }
                    }
                }
                rows::put_revocation(conn, id, now, until)
            },
        )?;
        Ok(kind)
    }

    pub(super) fn delete_user(&self, user: &str) -> Result<u64, StoreError> {
        self.through(
            "delete_user",
            || self.local.delete_user_now(user),
            |_, conn| {
                let ids: Vec<String> = conn
                    .prepare_cached("SELECT id FROM sessions WHERE user_id = ?1")?
                    .query_map([self.user_column(user)], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                ids.iter().try_for_each(|id| self.delete_row(conn, id))
            },
        )
    }

    pub(super) fn wipe(&self) -> Result<u64, StoreError> {
        self.through(
            "wipe",
            || {
                self.pending.clear();
                self.local.wipe_now()
            },
            |_, conn| {
                self.written.forget_all();
                conn.execute_batch(
                    "DELETE FROM sessions; DELETE FROM revocations; DELETE FROM tokens;
                     DELETE FROM statics; DELETE FROM nonces;",
                )
            },
        )
    }

    /// Deletes a session's rows (and what [`super::written`] knew of it).
    fn delete_row(&self, conn: &Connection, id: &str) -> rusqlite::Result<()> {
        self.written.forget(id);
        rows::delete(conn, id)
    }

    /// The `user_id` column's value for `user` (sealed deterministically
    /// with encryption on; every row is under the sealing key after load).
    fn user_column(&self, user: &str) -> String {
        crate::session::seal::user_column(self.sealer.as_ref(), user)
    }

    /// A token check from `/auth`: answered from memory; a live session's
    /// touch (idle timer, count, client) is written behind.
    pub(super) fn authenticate(
        &self,
        token: &TokenHash,
        seen: &crate::session::TokenUse<'_>,
    ) -> TokenCheck {
        let check = self.local.check_token(token, seen.now, Some(seen));
        if let TokenCheck::Live(owner) = &check {
            self.mark(&owner.session_id);
        }
        check
    }
}
