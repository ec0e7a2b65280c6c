//! `[sessions.encryption]` on PostgreSQL: the check on connect (every
//! storage key a sealed row names must be configured; sealed rows with no
//! key configured are refused), and the background pass that seals rows
//! written in clear (before encryption was turned on) or under an old key
//! again under the sealing key, a batch per tick until none is left.
//!
//! Unlike the embedded store, PostgreSQL is read per request, so a row is
//! opened when it is read; the check makes a wrong key list fail at the
//! first connect instead of row by row: at the start (the first connect is
//! tried before serving, and the start fails with the reason), or, when
//! PostgreSQL was unreachable then, at the connect that finds it (every
//! operation answers 503 `store_unavailable` and `/ready` stays 503, with
//! the reason logged).

use tokio_postgres::Client;

use super::conn::Failure;
use super::Inner;
use crate::session::seal::{self, Private, SealError, Sealer};

/// Rows sealed again per tick.
const BATCH: i64 = 200;

/// Rows not (all) under key `$1`: in clear, or a value under another key.
const STALE: &str = "SELECT id, client_ip, user_agent, metadata, user_id, ip_key, seal
  FROM sessions WHERE seal IS DISTINCT FROM $1 OR EXISTS (
    SELECT 1 FROM unnest(ARRAY[client_ip, user_agent, metadata, user_id, ip_key]) AS v
    WHERE v IS NOT NULL AND split_part(v, ':', 1) <> $1)
  LIMIT $2";

/// Only if the row is as read: a concurrent write wins.
const RESEAL: &str = "UPDATE sessions SET client_ip = $2, user_agent = $3, metadata = $4,
    user_id = $5, ip_key = $6, seal = $7
  WHERE id = $1 AND client_ip IS NOT DISTINCT FROM $8 AND user_agent IS NOT DISTINCT FROM $9
    AND metadata IS NOT DISTINCT FROM $10 AND user_id IS NOT DISTINCT FROM $11";

/// Refuses a database whose sealed rows name a key not configured here.
pub async fn check(client: &Client, sealer: Option<&Sealer>) -> Result<(), Failure> {
    let rows = client.query(super::sql::SEAL_KEYS, &[]).await?;
    for row in rows {
        let id: String = row.try_get(0)?;
        let refused = match sealer {
            None => Some(SealError::NoKey(id)),
            Some(sealer) if !sealer.key_ids().contains(&id.as_str()) => {
                Some(SealError::UnknownKey(id))
            }
            Some(_) => None,
        };
        if let Some(err) = refused {
            return Err(Failure::Sealing(err.to_string()));
        }
    }
    Ok(())
}

impl Inner {
    /// Seals up to [`BATCH`] stale rows again; how many were found (0:
    /// done, the background task stops asking).
    pub(super) async fn reseal_batch(&self) -> Result<usize, crate::session::StoreError> {
        let Some(sealer) = self.sealer.clone() else {
            return Ok(0);
        };
        let key = sealer.key_id().to_string();
        let rows = self
            .run("reseal", |client| {
                let key = &key;
                async move { client.query(STALE, &[key, &BATCH]).await }
            })
            .await?;
        for row in &rows {
            let id: String = row.get(0);
            let stored = Private {
                client_ip: row.get(1),
                user_agent: row.get(2),
                metadata: row.get(3),
                user_id: row.get(4),
            };
            let ip_key: Option<String> = row.get(5);
            let seal_col: Option<String> = row.get(6);
            let opened = seal::from_row(Some(&sealer), seal_col.as_deref(), &id, stored.clone())
                .and_then(|(private, _)| {
                    let ip_key = match (&seal_col, ip_key) {
                        (Some(_), Some(k)) => Some(sealer.open("", "ip_key", &k)?),
                        (_, k) => k,
                    };
                    Ok((private, ip_key))
                });
            let (private, ip_key) = match opened {
                Ok(opened) => opened,
                Err(err) => {
                    // The connect check admits only known keys: an altered row.
                    tracing::error!(error = %err, "session store (postgres): a row does not open");
                    continue;
                }
            };
            let sealed = sealer.seal_private(&id, &private);
            let ip_key = ip_key.map(|k| sealer.seal_lookup("ip_key", &k));
            self.run("reseal", |client| {
                let (id, sealed, ip_key, key, stored) = (&id, &sealed, &ip_key, &key, &stored);
                async move {
                    client
                        .execute(
                            RESEAL,
                            &[
                                id,
                                &sealed.client_ip,
                                &sealed.user_agent,
                                &sealed.metadata,
                                &sealed.user_id,
                                ip_key,
                                key,
                                &stored.client_ip,
                                &stored.user_agent,
                                &stored.metadata,
                                &stored.user_id,
                            ],
                        )
                        .await
                }
            })
            .await?;
        }
        Ok(rows.len())
    }
}
