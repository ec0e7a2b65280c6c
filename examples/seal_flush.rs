//! What encryption at rest (`[sessions.encryption]`) adds to the embedded
//! store's write-behind, per session record (docs/benchmarks.md): SESSIONS
//! signed sessions are seen once (as `/auth` does) and the flush that
//! writes them is timed, first as inserts, then (each seen again) as
//! updates; clear and sealed stores alternate over ROUNDS rounds, each on a
//! fresh temp dir. Prints the median microseconds per record and the ratio,
//! twice: wall time (what a flush takes, fsync waits included: noisy on a
//! shared disk) and the flushing thread's CPU time (from
//! /proc/thread-self/schedstat, in ns: what the flush costs the machine).
//!
//!   cargo run --release --example seal_flush [-- SESSIONS ROUNDS]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use prometheus::IntCounter;
use telegate::config::{
    self, ConfigSource, EmbeddedSettings, EncryptionSettings, MapEnv, StoreBackend,
};
use telegate::pipeline::metrics::Metrics;
use telegate::session::{EmbeddedStore, SessionGate, Sighting, StoreMetrics};

const NOW: i64 = 1_800_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: u32 = args.next().map_or(Ok(20_000), |t| t.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |t| t.parse())?;
    // [clock][mode][phase]: clock 0 wall, 1 CPU; mode 0 clear, 1 sealed.
    let mut per_record: [[[Vec<f64>; 2]; 2]; 2] = Default::default();
    for _ in 0..rounds {
        for (mode, sealed) in [false, true].into_iter().enumerate() {
            let timed = one_round(count, sealed)?;
            for (clock, phases) in timed.iter().enumerate() {
                for (phase, value) in phases.iter().enumerate() {
                    per_record[clock][mode][phase].push(*value);
                }
            }
        }
    }
    for (clock, clock_name) in ["wall", "cpu"].iter().enumerate() {
        for (phase, name) in ["insert", "update"].iter().enumerate() {
            let clear = median(&mut per_record[clock][0][phase]);
            let sealed = median(&mut per_record[clock][1][phase]);
            println!(
                "{clock_name} {name}: clear {clear:.2} us/record, sealed {sealed:.2} us/record, ratio {:.3} (sessions={count} rounds={rounds})",
                sealed / clear
            );
        }
    }
    Ok(())
}

/// This thread's time on a CPU so far, in nanoseconds.
fn thread_cpu_ns() -> Result<f64, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns = text.split_whitespace().next().ok_or("empty schedstat")?;
    Ok(ns.parse::<f64>()?)
}

/// Microseconds per record of the insert flush and of the update flush,
/// by wall clock and by CPU time.
fn one_round(count: u32, sealed: bool) -> Result<[[f64; 2]; 2], Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut settings = config::load(&ConfigSource::Embedded, &MapEnv::default())?.sessions;
    let StoreBackend::Embedded(_) = settings.backend else {
        return Err("the embedded config does not use the embedded store".into());
    };
    settings.max_per_ip = 1000;
    let encryption = if sealed {
        let key = dir.path().join("storage.key");
        std::fs::write(&key, telegate::session::seal::new_key_text()?)?;
        Some(EncryptionSettings {
            key_files: vec![key],
        })
    } else {
        None
    };
    let embedded = EmbeddedSettings {
        data_dir: dir.path().join("data"),
        // The background flush must not run during the measurement.
        flush_interval: std::time::Duration::from_secs(60),
        encryption,
    };
    let metrics = Metrics::new("bench")?;
    let store = EmbeddedStore::open(
        settings,
        embedded,
        StoreMetrics {
            errors: metrics.store_errors_total.clone(),
            duration: metrics.store_duration_seconds.clone(),
        },
        IntCounter::new("evicted", "sessions evicted")?,
        Arc::new(|| NOW),
    )?;
    // [clock][pass]: clock 0 wall, 1 CPU; pass 0 inserts, 1 updates.
    let (mut wall, mut cpu_time) = ([0.0; 2], [0.0; 2]);
    for (pass, (wall, cpu_time)) in wall.iter_mut().zip(&mut cpu_time).enumerate() {
        for n in 0..count {
            let id = format!("{:08x}-0000-4000-a000-{:012x}", n, u64::from(n) * 7919);
            let sighting = Sighting {
                session_id: &id,
                client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n / 20))),
                user_agent: Some("KOTORModSync/2.0.0.0 (Windows NT 10.0; Win64; x64)"),
                client_version: Some("2.0.0.0"),
                key_id: "kotormodsync",
                bytes: pass as u64,
                now: NOW,
            };
            store
                .observe(&sighting)
                .map_err(|_| format!("session {n} refused"))?;
        }
        let started = Instant::now();
        let cpu = thread_cpu_ns()?;
        store.flush()?;
        *cpu_time = (thread_cpu_ns()? - cpu) / 1e3 / f64::from(count);
        *wall = started.elapsed().as_secs_f64() * 1e6 / f64::from(count);
    }
    Ok([wall, cpu_time])
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
