//! Reachability of a remote session store (Redis, PostgreSQL), for
//! `/ready`: unknown until the first answer or failure, then up or down,
//! each transition logged once (never per request).

use std::sync::atomic::{AtomicU8, Ordering};

const UP: u8 = 1;
const DOWN: u8 = 2;

pub(crate) struct Health {
    state: AtomicU8,
    /// The store's name in the log lines.
    store: &'static str,
}

impl Health {
    pub(crate) fn new(store: &'static str) -> Health {
        Health {
            state: AtomicU8::new(0),
            store,
        }
    }

    pub(crate) fn up(&self) {
        if self.state.swap(UP, Ordering::AcqRel) != UP {
            tracing::info!("session store ({}) reachable", self.store);
        }
    }

    pub(crate) fn down(&self, detail: &str) {
        if self.state.swap(DOWN, Ordering::AcqRel) != DOWN {
            tracing::warn!(
                error = %detail,
                "session store ({}) unreachable: signed sessions go on locally and are \
                 written behind when it returns; token checks and the session API answer 503",
                self.store
            );
        }
    }

    /// Down because the store refused telegate's credentials: the same
    /// state as [`Health::down`], with a line that says what to fix (the
    /// store's own words, which never hold the password).
    pub(crate) fn refused(&self, detail: &str) {
        if self.state.swap(DOWN, Ordering::AcqRel) != DOWN {
            tracing::error!(
                error = %detail,
                "session store ({}) refused telegate's credentials: check the user and password \
                 (or password file) of its URL; token checks and the session API answer 503",
                self.store
            );
        }
    }

    /// Down, as opposed to up or not known yet (tests).
    #[cfg(test)]
    pub(crate) fn is_down(&self) -> bool {
        self.state.load(Ordering::Acquire) == DOWN
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) == UP
    }
}
