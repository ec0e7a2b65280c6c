//! One subject's ban record and the rules on it ([`super::bans`]): the
//! refusal window, the escalation (`ban_secs` doubled per earlier ban, up
//! to `max_ban_secs`, reset after `max_ban_secs` clean), the check, and the
//! purge that keeps a map bounded by [`MAX_SUBJECTS`].

use std::collections::HashMap;
use std::hash::Hash;

use super::bans::MAX_SUBJECTS;
use crate::config::BanSettings;
use crate::protocol::reject::Reject;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Record {
    pub(super) window_start: i64,
    pub(super) count: u32,
    /// Bans so far (the next lasts `ban_secs << repeats`).
    pub(super) repeats: u32,
    /// Unix seconds the current or last ban ends; 0: never banned.
    pub(super) until: i64,
    /// Unix seconds the current or last ban began.
    pub(super) since: i64,
}

/// `Banned` while `until` is ahead of `now`.
pub(super) fn check_until(until: Option<&i64>, now: i64) -> Result<(), Reject> {
    match until {
        Some(until) if *until > now => Err(Reject::Banned {
            retry_after_secs: (*until - now).max(1) as u64,
        }),
        _ => Ok(()),
    }
}

/// [`check_until`] of `key`'s record.
pub(super) fn check<K, Q>(map: &HashMap<K, Record>, key: &Q, now: i64) -> Result<(), Reject>
where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    check_until(map.get(key).map(|r| &r.until), now)
}

/// Counts a refusal for a subject that may be new; `Some((secs, bans))`
/// when it is banned now.
pub(super) fn note<K: Hash + Eq>(
    settings: &BanSettings,
    map: &mut HashMap<K, Record>,
    key: K,
    now: i64,
) -> Option<(u64, u32)> {
    if !map.contains_key(&key) && map.len() >= MAX_SUBJECTS {
        purge(settings, map, now);
        if map.len() >= MAX_SUBJECTS {
            return None;
        }
    }
    escalate(settings, map.entry(key).or_default(), now)
}

pub(super) fn escalate(settings: &BanSettings, r: &mut Record, now: i64) -> Option<(u64, u32)> {
    if r.until > now {
        return None;
    }
    let max = settings.max_ban_secs as i64;
    if r.repeats > 0 && now.saturating_sub(r.until) > max {
        r.repeats = 0;
    }
    if now.saturating_sub(r.window_start) >= settings.within_secs as i64 {
        r.window_start = now;
        r.count = 0;
    }
    r.count += 1;
    if r.count < settings.refusals {
        return None;
    }
    let secs = settings
        .ban_secs
        .checked_shl(r.repeats)
        .filter(|s| *s <= settings.max_ban_secs)
        .unwrap_or(settings.max_ban_secs);
    r.repeats = r.repeats.saturating_add(1);
    r.count = 0;
    r.window_start = now;
    r.until = now.saturating_add(secs as i64);
    r.since = now;
    Some((secs, r.repeats))
}

/// Returns the bans in force that are left.
pub(super) fn purge<K: Hash + Eq>(
    settings: &BanSettings,
    map: &mut HashMap<K, Record>,
    now: i64,
) -> usize {
    let within = settings.within_secs as i64;
    let max = settings.max_ban_secs as i64;
    map.retain(|_, r| {
        r.until > now
            || now.saturating_sub(r.window_start) < within
            || (r.repeats > 0 && now.saturating_sub(r.until) <= max)
    });
    map.shrink_to_fit();
    map.values().filter(|r| r.until > now).count()
}
