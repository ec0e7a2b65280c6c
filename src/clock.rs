//! The wall clock, injected: every request reads it once (at its start) and
//! passes `now` down, so the window check, the static-header check and the
//! session store see the same second; tests stand exactly on a window's edge
//! by handing in their own clock.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now. Injected so tests can stand exactly on a window's edge.
pub type UnixClock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> UnixClock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}
