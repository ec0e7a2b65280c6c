//! The status board: what the status page remembers about recent decisions
//! (a rolling five-minute window of allowed and refused requests by reason,
//! and when each key last verified a request). Fed by the one observation
//! step ([`crate::pipeline::observe`]); read by the status pages and, for
//! the leak signals ([`leaks`]), by `/metrics`.

pub mod key_usage;
pub mod leaks;
pub mod window;

use crate::protocol::keyring::KeyId;
pub use key_usage::KeyUsage;
pub use leaks::LeakSignals;
pub use window::RollingWindow;

#[derive(Default)]
pub struct Board {
    pub window: RollingWindow,
    pub keys: KeyUsage,
    pub leaks: LeakSignals,
}

impl Board {
    /// An allowed request; `key` when a signature (not a token) verified it.
    pub fn allowed(&self, key: Option<&KeyId>, now: i64) {
        self.window.allow(now);
        if let Some(key) = key {
            self.keys.mark(key, now);
        }
    }

    pub fn denied(&self, reason: &str, now: i64) {
        self.window.deny(reason, now);
    }
}
