//! Restart time of the embedded session store with many sessions on disk
//! (docs/benchmarks.md): writes SESSIONS signed sessions through the store
//! (one sighting each, as `/auth` does, then one write-behind flush), drops
//! it, and times a reopen (open, prune, load into memory), printing the
//! file size and the resident set after the load.
//!
//!   cargo run --release --example store_restart [-- SESSIONS]
//!
//! Settings are those of the embedded config (`max_sessions` 1M), with
//! `max_per_ip` raised so one address per 20 sessions is never refused; the
//! data dir is a fresh temp dir.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use prometheus::IntCounter;
use telegate::config::{self, ConfigSource, EmbeddedSettings, MapEnv, StoreBackend};
use telegate::pipeline::metrics::Metrics;
use telegate::session::{EmbeddedStore, SessionAdmin, SessionGate, Sighting, StoreMetrics};

const NOW: i64 = 1_800_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: u32 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let mut settings = config::load(&ConfigSource::Embedded, &MapEnv::default())?.sessions;
    let StoreBackend::Embedded(defaults) = settings.backend.clone() else {
        return Err("the embedded config does not use the embedded store".into());
    };
    settings.max_per_ip = 1000;
    let embedded = EmbeddedSettings {
        data_dir: dir.path().to_path_buf(),
        ..defaults
    };
    let open = || -> Result<EmbeddedStore, Box<dyn std::error::Error>> {
        let metrics = Metrics::new("bench")?;
        Ok(EmbeddedStore::open(
            settings.clone(),
            embedded.clone(),
            StoreMetrics {
                errors: metrics.store_errors_total.clone(),
                duration: metrics.store_duration_seconds.clone(),
            },
            IntCounter::new("evicted", "sessions evicted")?,
            Arc::new(|| NOW),
        )?)
    };
    let store = open()?;
    let started = Instant::now();
    for n in 0..count {
        // GUID-shaped and distinct, like the shipped client's ids.
        let id = format!("{:08x}-0000-4000-a000-{:012x}", n, u64::from(n) * 7919);
        let sighting = Sighting {
            session_id: &id,
            client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n / 20))),
            user_agent: Some("KOTORModSync/2.0.0.0 (Windows NT 10.0; Win64; x64)"),
            client_version: Some("2.0.0.0"),
            key_id: "kotormodsync",
            bytes: 0,
            now: NOW,
        };
        if store.observe(&sighting).is_err() {
            return Err(format!("session {n} refused").into());
        }
        // The pending queue is bounded: flush as the background thread would.
        if n % 50_000 == 49_999 {
            store.flush()?;
        }
    }
    store.flush()?;
    let written = started.elapsed();
    drop(store);
    let file = std::fs::metadata(dir.path().join("sessions.sqlite3"))?.len();
    let started = Instant::now();
    let store = open()?;
    let reopened = started.elapsed();
    let live: u64 = store.active(NOW).iter().map(|(_, n)| n).sum();
    println!(
        "sessions={count} loaded_live={live} write_s={:.2} db_mib={:.1} reopen_s={:.2} rss_mib={:.1}",
        written.as_secs_f64(),
        file as f64 / (1024.0 * 1024.0),
        reopened.as_secs_f64(),
        rss_kib() as f64 / 1024.0,
    );
    Ok(())
}

/// VmRSS of /proc/self/status in KiB (0 when absent: not Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix("VmRSS:")?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}
