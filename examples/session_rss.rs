//! Memory held by the memory session store with 1,000,000 tracked signed
//! sessions (docs/benchmarks.md): observes one sighting per session, as
//! `/auth` does for each new `X-KMS-Session-ID`, then prints the process's
//! resident set from /proc/self/status.
//!
//!   cargo run --release --example session_rss [-- SESSIONS]
//!
//! Sessions have GUID-shaped ids, 20 per client address (under the default
//! `max_per_ip` of 50), a KOTORModSync-like user agent and client version;
//! settings are the defaults of the embedded config (`max_sessions` 1M).

#[path = "support/rss.rs"]
mod rss;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use prometheus::IntCounter;
use telegate::config::{self, ConfigSource, MapEnv};
use telegate::session::{MemoryStore, SessionAdmin, SessionGate, SessionKind, Sighting};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: u32 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 1_000_000,
    };
    let settings = config::load(&ConfigSource::Embedded, &MapEnv::default())?.sessions;
    let evicted = IntCounter::new("evicted", "sessions evicted")?;
    let baseline = rss::status_kib("VmRSS");
    let store = MemoryStore::new(settings, evicted.clone());
    let now = 1_800_000_000;
    let started = Instant::now();
    for n in 0..count {
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            n.wrapping_mul(2_654_435_761),
            n & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            u64::from(n) * 7919
        );
        let client = n / 20;
        let sighting = Sighting {
            session_id: &id,
            client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | client)),
            user_agent: Some("KOTORModSync/2.0.0.0 (Windows NT 10.0; Win64; x64)"),
            client_version: Some("2.0.0.0"),
            key_id: "kotormodsync",
            bytes: 0,
            now: now + i64::from(n / 10_000),
        };
        if store.observe(&sighting).is_err() {
            return Err(format!("session {n} refused").into());
        }
    }
    let elapsed = started.elapsed();
    let live = store
        .active(now + i64::from(count / 10_000))
        .into_iter()
        .find(|(kind, _)| *kind == SessionKind::Signed)
        .map_or(0, |(_, n)| n);
    let rss = rss::status_kib("VmRSS");
    let peak = rss::status_kib("VmHWM");
    let per_session = (rss.saturating_sub(baseline) * 1024) / u64::from(count.max(1));
    println!(
        "sessions={count} live={live} evicted={} rss_mib={:.1} peak_rss_mib={:.1} baseline_rss_mib={:.1} bytes_per_session={per_session} observe_ns={:.0}",
        evicted.get(),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        baseline as f64 / 1024.0,
        elapsed.as_nanos() as f64 / f64::from(count.max(1)),
    );
    Ok(())
}
