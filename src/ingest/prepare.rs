//! The CPU part of an admitted export, per `ingest.mode`: inflate (under
//! its cap), decode, count items, enrich and re-encode in the same media
//! type. Large or gzipped bodies run on the blocking pool, so a big export
//! never stalls the connections sharing a worker.

use bytes::Bytes;

use super::body;
use super::error::IngestError;
use super::otlp::{self, Media, Signal};
use crate::config::IngestMode;
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
}

pub struct Prepared {
    pub body: Bytes,
    pub items: Option<u64>,
}

impl Job {
    pub fn run(mut self) -> Result<Prepared, IngestError> {
        if self.mode == IngestMode::Passthrough {
            if self.gzipped {
                body::gunzip_size(&self.raw, self.max_inflated)?;
            }
            return Ok(Prepared {
                body: self.raw,
                items: None,
            });
        }
        let inflated;
        let plain: &[u8] = if self.gzipped {
            inflated = body::gunzip(&self.raw, self.max_inflated, &mut self.held)?;
            &inflated
        } else {
            &self.raw
        };
        let mut export = otlp::decode(self.signal, self.media, plain)
            .map_err(|err| IngestError::Malformed(err.0))?;
        let items = Some(export.items());
        if self.mode == IngestMode::Validate {
            return Ok(Prepared {
                body: self.raw,
                items,
            });
        }
        let add: Vec<(&str, &str)> = self.add.iter().map(|(k, v)| (*k, v.as_str())).collect();
        export.enrich(&add, &self.drop);
        let encoded = export.encode(self.media).map_err(|err| {
            tracing::error!(error = %err, "cannot re-encode an enriched export");
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
        })
    }
}

impl Job {
    /// Runs the job, on the blocking pool when it is large or gzipped.
    pub async fn run_off_thread(self) -> Result<Prepared, IngestError> {
        if self.raw.len() < BLOCKING_THRESHOLD && !self.gzipped {
            return self.run();
        }
        tokio::task::spawn_blocking(move || self.run())
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "payload preparation task failed");
                IngestError::Internal
            })?
    }
}
