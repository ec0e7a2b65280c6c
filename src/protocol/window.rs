//! The timestamp window (pure): a signature is fresh when
//! `|now - timestamp| <= max_skew`, checked in both directions (stripe-go once
//! accepted any future time).

use crate::protocol::reject::Reject;

/// Checks `timestamp` (Unix seconds, as signed) against `now`.
pub fn check(timestamp: i64, now: i64, max_skew_secs: u64) -> Result<(), Reject> {
    let skew = i64::try_from(max_skew_secs).unwrap_or(i64::MAX);
    let drift = now.saturating_sub(timestamp);
    if drift > skew {
        Err(Reject::StaleTimestamp)
    } else if drift < -skew {
        Err(Reject::FutureTimestamp)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn edges_are_inclusive_in_both_directions() {
        assert_eq!(check(NOW, NOW, 300), Ok(()));
        assert_eq!(check(NOW - 300, NOW, 300), Ok(()));
        assert_eq!(check(NOW + 300, NOW, 300), Ok(()));
        assert_eq!(check(NOW - 301, NOW, 300), Err(Reject::StaleTimestamp));
        assert_eq!(check(NOW + 301, NOW, 300), Err(Reject::FutureTimestamp));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        assert_eq!(check(i64::MIN, NOW, 300), Err(Reject::StaleTimestamp));
        assert_eq!(check(i64::MAX, NOW, 300), Err(Reject::FutureTimestamp));
        assert_eq!(check(NOW, NOW, u64::MAX), Ok(()));
    }

    #[test]
    fn a_zero_window_accepts_only_now() {
        assert_eq!(check(NOW, NOW, 0), Ok(()));
        assert_eq!(check(NOW - 1, NOW, 0), Err(Reject::StaleTimestamp));
        assert_eq!(check(NOW + 1, NOW, 0), Err(Reject::FutureTimestamp));
    }
}
