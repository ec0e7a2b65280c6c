//! Static-header sightings for the memory store: a side cache keyed by the
//! header set's digest, bounded by `max_sessions` entries and each entry by
//! the `max_age` it was remembered with. The session itself is checked on
//! read (live, not revoked), so a sighting never outlives its session's use.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use moka::policy::Expiry;
use moka::sync::Cache;

use crate::session::{HeaderSet, StaticSighting};

#[derive(Clone, Copy)]
struct Stored {
    sighting: StaticSighting,
    max_age: Duration,
}

struct MaxAge;

impl Expiry<[u8; 32], Stored> for MaxAge {
    fn expire_after_create(&self, _: &[u8; 32], value: &Stored, _: Instant) -> Option<Duration> {
        Some(value.max_age)
    }
}

pub(super) struct Statics(Cache<[u8; 32], Stored>);

impl Statics {
    pub(super) fn new(capacity: u64) -> Statics {
        Statics(
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(MaxAge)
                .build(),
        )
    }

    /// Keeps the first sighting: a later one (another address) changes
    /// nothing. True when this call stored it.
    pub(super) fn remember(
        &self,
        set: &HeaderSet<'_>,
        client_ip: IpAddr,
        now: i64,
        max_age: Duration,
    ) -> bool {
        let key = set.digest();
        if self.0.contains_key(&key) {
            return false;
        }
        self.0
            .entry(key)
            .or_insert_with(|| Stored {
                sighting: StaticSighting {
                    client_ip,
                    first_seen: now,
                },
                max_age,
            })
            .is_fresh()
    }

    pub(super) fn get(&self, set: &HeaderSet<'_>) -> Option<StaticSighting> {
        self.0.get(&set.digest()).map(|stored| stored.sighting)
    }

    /// Puts back a sighting a persistent store kept, for what is left of
    /// its `max_age`.
    pub(super) fn restore(&self, digest: [u8; 32], sighting: StaticSighting, left: Duration) {
        self.0.insert(
            digest,
            Stored {
                sighting,
                max_age: left,
            },
        );
    }

    pub(super) fn clear(&self) {
        self.0.invalidate_all();
    }
}
