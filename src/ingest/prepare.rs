//! The CPU part of an admitted export, per `ingest.mode`: inflate (under
//! its cap), decode, count items, apply the content policy and the series
//! guard ([`super::content`]), enrich and re-encode in the same media
//! type. `validate` forwards the bytes as sent unless items were refused;
//! of protobuf with neither policy nor guard on, it only walks the wire
//! format ([`otlp::walk`]: the same bytes accepted, the same count). Large or gzipped bodies run on the blocking pool, so a big export
//! never stalls the connections sharing a worker.
//!
//! With the guard shared through Redis the CPU part is cut in two around
//! one await: the walk ([`Job::first`]) notes the series this replica has
//! not seen, the store judges them in one call, and [`Pending::finish`]
//! drops those it refused, then encodes.

use std::sync::Arc;

use bytes::Bytes;

use super::body;
use super::cardinality::shared::{Ask, Refused};
use super::cardinality::Guard;
use super::content::{self, Refusals};
use super::error::IngestError;
use super::otlp::{self, Export, Media, Signal};
use crate::config::{ContentSettings, IngestMode};
use crate::pipeline::budget::Held;

/// Bodies at least this large are decoded on the blocking pool.
pub const BLOCKING_THRESHOLD: usize = 128 * 1024;

/// The CPU part of a request: inflate, decode, count, enrich, re-encode.
pub struct Job {
    pub mode: IngestMode,
    pub signal: Signal,
    pub media: Media,
    pub gzipped: bool,
    pub raw: Bytes,
    pub max_inflated: usize,
    /// Resource attributes `enrich` sets.
    pub add: Vec<(&'static str, String)>,
    /// Attribute keys `enrich` removes.
    pub drop: Vec<String>,
    /// What the inflated body holds of the process-wide budget (given back
    /// when the job ends: the inflated copy does not outlive it).
    pub held: Held,
    /// The content policy, when on.
    pub content: Option<Arc<ContentSettings>>,
    /// The series guard, when on, with the session id and `now`.
    pub guard: Option<(Arc<Guard>, String, i64)>,
}

pub struct Prepared {
    pub body: Bytes,
    /// Items to forward (after refusals), when decoded.
    pub items: Option<u64>,
    /// Items refused by the content policy or the guard, per rule.
    pub refused: Refusals,
}

impl Prepared {
    /// Every item was refused: nothing is forwarded.
    pub fn emptied(&self) -> bool {
        self.items == Some(0) && self.refused.total() > 0
    }
}

/// What the walk left to do.
pub enum Step {
    Done(Prepared),
    /// The shared guard must judge the series this replica has not seen
    /// (boxed: the decoded export is large, and rarer on this path).
    Ask(Box<Pending>),
}

/// A decoded export waiting for the shared guard's verdict.
pub struct Pending {
    job: Job,
    export: Export,
    offered: u64,
    refused: Refusals,
    ask: Option<Ask>,
}

impl Job {
    /// Inflates, decodes, applies the content policy and the local guard.
    pub fn first(mut self) -> Result<Step, IngestError> {
        if self.mode == IngestMode::Passthrough {
            if self.gzipped {
                body::gunzip_size(&self.raw, self.max_inflated)?;
            }
            return Ok(Step::Done(Prepared {
                body: self.raw,
                items: None,
                refused: Refusals::default(),
            }));
        }
        let inflated;
        let plain: &[u8] = if self.gzipped {
            inflated = body::gunzip(&self.raw, self.max_inflated, &mut self.held)?;
            &inflated
        } else {
            &self.raw
        };
        if self.walk_suffices() {
            // Nothing needs the decoded export: check and count the wire format.
            let items = otlp::walk::items(self.signal, plain)
                .map_err(|err| IngestError::Malformed(err.0))?;
            return Ok(Step::Done(Prepared {
                body: self.raw,
                items: Some(items),
                refused: Refusals::default(),
            }));
        }
        let mut export = otlp::decode(self.signal, self.media, plain)
            .map_err(|err| IngestError::Malformed(err.0))?;
        let offered = export.items();
        let mut ask = None;
        let refused = if self.content.is_some() || self.guard.is_some() {
            let mut admit = self
                .guard
                .as_ref()
                .map(|(g, session, now)| g.begin(*now, session));
            let judge = admit
                .as_mut()
                .map(|a| a as &mut dyn super::cardinality::Judge);
            let refused =
                content::apply(&mut export, self.content.as_deref(), judge).map_err(|r| {
                    IngestError::ContentRejected {
                        rule: r.rule.as_str(),
                        items: r.items,
                    }
                })?;
            ask = admit.and_then(|a| a.into_ask());
            refused
        } else {
            Refusals::default()
        };
        match ask {
            Some(ask) => Ok(Step::Ask(Box::new(Pending {
                job: self,
                export,
                offered,
                refused,
                ask: Some(ask),
            }))),
            None => self.encode(export, offered, refused).map(Step::Done),
        }
    }

    /// `validate` of protobuf with no content policy and no series guard:
    /// the bytes go on as sent, so the walk ([`otlp::walk`]) accepts and
    /// counts exactly what the decode would, without building the export.
    fn walk_suffices(&self) -> bool {
        self.mode == IngestMode::Validate
            && self.media == Media::Protobuf
            && self.content.is_none()
            && self.guard.is_none()
    }

    fn encode(
        self,
        mut export: Export,
        offered: u64,
        refused: Refusals,
    ) -> Result<Prepared, IngestError> {
        let items = Some(offered.saturating_sub(refused.total()));
        if items == Some(0) && refused.total() > 0 {
            return Ok(Prepared {
                body: Bytes::new(),
                items,
                refused,
            });
        }
        if self.mode == IngestMode::Validate && refused.total() == 0 {
            return Ok(Prepared {
                body: self.raw,
                items,
                refused,
            });
        }
        if self.mode == IngestMode::Enrich {
            let add: Vec<(&str, &str)> = self.add.iter().map(|(k, v)| (*k, v.as_str())).collect();
            export.enrich(&add, &self.drop);
        }
        let encoded = export.encode(self.media).map_err(|err| {
            tracing::error!(error = %err, "cannot re-encode an export");
            IngestError::Internal
        })?;
        let body = if self.gzipped {
            body::gzip(&encoded)
        } else {
            encoded
        };
        Ok(Prepared {
            body: Bytes::from(body),
            items,
            refused,
        })
    }
}

impl Pending {
    /// Asks the shared guard (one store call, or the local bounds).
    async fn judge(&mut self) -> Refused {
        match (self.ask.take(), &self.job.guard) {
            (Some(ask), Some((guard, _, now))) => guard.resolve(ask, *now).await,
            _ => Refused::default(),
        }
    }

    /// Drops what the shared guard refused, then encodes.
    pub fn finish(mut self, refused: Refused) -> Result<Prepared, IngestError> {
        if let (false, Some((guard, _, _))) = (refused.is_empty(), self.job.guard.clone()) {
            let mut recheck = guard.recheck(&refused);
            let dropped = content::apply(&mut self.export, None, Some(&mut recheck))
                .map_err(|_| IngestError::Internal)?;
            self.refused.merge(&dropped);
        }
        self.job.encode(self.export, self.offered, self.refused)
    }
}

impl Job {
    /// Runs the job, on the blocking pool when it is large or gzipped; with
    /// the shared guard, its store call in between (never on that pool).
    pub async fn run_off_thread(self) -> Result<Prepared, IngestError> {
        if let Some((guard, _, now)) = &self.guard {
            guard.ready(*now).await;
        }
        let big = self.raw.len() >= BLOCKING_THRESHOLD || self.gzipped;
        let step = if big {
            blocking(move || self.first()).await?
        } else {
            self.first()?
        };
        let mut pending = match step {
            Step::Done(prepared) => return Ok(prepared),
            Step::Ask(pending) => pending,
        };
        let refused = pending.judge().await;
        if big {
            blocking(move || pending.finish(refused)).await
        } else {
            pending.finish(refused)
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        tracing::error!(error = %err, "payload preparation task failed");
        IngestError::Internal
    })?
}
