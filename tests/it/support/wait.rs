//! Bounded waits: a condition is probed every [`POLL_INTERVAL`] (or a given
//! interval) until it holds, at most `timeout` long and at most
//! `timeout / interval + 1` times, so no test sleeps a fixed time hoping
//! something has happened.

use std::future::Future;
use std::time::{Duration, Instant};

/// Time between two probes of a bounded wait.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `probe` until it answers `Ok`. On timeout the error names `what`
/// and the last probe error.
pub async fn poll_until<T, Fut>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Fut,
) -> Result<T, String>
where
    Fut: Future<Output = Result<T, String>>,
{
    poll(what, timeout, || Ok(()), probe).await
}

/// [`poll_until`] with a guard checked before each probe; a guard error ends
/// the wait at once (e.g. the process being waited on has died).
pub(super) async fn poll<T, Fut>(
    what: &str,
    timeout: Duration,
    mut guard: impl FnMut() -> Result<(), String>,
    mut probe: impl FnMut() -> Fut,
) -> Result<T, String>
where
    Fut: Future<Output = Result<T, String>>,
{
    let mut bounds = Bounds::new(timeout, POLL_INTERVAL);
    loop {
        guard().map_err(|err| format!("while waiting for {what}: {err}"))?;
        match probe().await {
            Ok(value) => return Ok(value),
            Err(err) => bounds.last = err,
        }
        if !bounds.again() {
            return Err(bounds.timed_out(what));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`poll_until`] for tests without a runtime: the thread sleeps `interval`
/// between probes (longer than [`POLL_INTERVAL`] where each probe costs
/// something that is limited, such as a rate-limited request).
pub fn poll_blocking<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let mut bounds = Bounds::new(timeout, interval);
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(err) => bounds.last = err,
        }
        if !bounds.again() {
            return Err(bounds.timed_out(what));
        }
        std::thread::sleep(interval);
    }
}

/// The count and time left to one wait, and its last probe error.
struct Bounds {
    started: Instant,
    timeout: Duration,
    attempts_left: u128,
    last: String,
}

impl Bounds {
    fn new(timeout: Duration, interval: Duration) -> Bounds {
        Bounds {
            started: Instant::now(),
            timeout,
            attempts_left: timeout.as_millis() / interval.as_millis().max(1) + 1,
            last: String::from("never probed"),
        }
    }

    /// Counts the probe just made; whether another one may follow.
    fn again(&mut self) -> bool {
        self.attempts_left = self.attempts_left.saturating_sub(1);
        self.attempts_left > 0 && self.started.elapsed() < self.timeout
    }

    fn timed_out(&self, what: &str) -> String {
        format!(
            "timed out after {:?} waiting for {what}; last probe: {}",
            self.started.elapsed(),
            self.last
        )
    }
}
