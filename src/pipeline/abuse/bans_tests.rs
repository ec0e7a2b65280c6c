//! The ban tracker's unit tests: windows, doubling, the cap, sessions apart, listing and lifting.
use super::*;

fn bans() -> Bans {
    let settings = BanSettings {
        refusals: 3,
        within_secs: 60,
        ban_secs: 10,
        max_ban_secs: 25,
    };
    let metrics = BanMetrics {
        bans_total: IntCounter::new("b", "b").unwrap(),
        bans_active: IntGauge::new("a", "a").unwrap(),
    };
    Bans::new(settings, metrics)
}

const IP: &str = "192.0.2.7";

#[test]
fn refusals_in_the_window_ban_and_each_repeat_doubles_up_to_the_cap() {
    let bans = bans();
    let ip: IpAddr = IP.parse().unwrap();
    bans.note(ip, None, 0);
    bans.note(ip, None, 59);
    assert_eq!(bans.check_address(ip, 59), Ok(()));
    bans.note(ip, None, 60);
    bans.note(ip, None, 61);
    assert_eq!(
        bans.check_address(ip, 61),
        Ok(()),
        "the window restarted at 60"
    );
    bans.note(ip, None, 62);
    assert_eq!(
        bans.check_address(ip, 62),
        Err(Reject::Banned {
            retry_after_secs: 10
        })
    );
    assert_eq!(bans.metrics.bans_total.get(), 1);
    assert_eq!(bans.check_address(ip, 72), Ok(()), "over");
    for t in 72..75 {
        bans.note(ip, None, t);
    }
    assert_eq!(
        bans.check_address(ip, 74).unwrap_err().retry_after(),
        Some(20)
    );
    for t in 94..97 {
        bans.note(ip, None, t);
    }
    assert_eq!(
        bans.check_address(ip, 96).unwrap_err().retry_after(),
        Some(25),
        "40 capped at max_ban_secs"
    );
    // Clean for longer than max_ban_secs after the ban: from ban_secs again.
    for t in 200..203 {
        bans.note(ip, None, t);
    }
    assert_eq!(
        bans.check_address(ip, 202).unwrap_err().retry_after(),
        Some(10)
    );
}

#[test]
fn sessions_are_banned_apart_listed_and_lifted() {
    let bans = bans();
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "192.0.2.2".parse().unwrap();
    bans.note(a, Some("s1"), 0);
    bans.note(b, Some("s1"), 0);
    bans.note(a, Some("s1"), 1);
    assert!(
        bans.check_session("s1", 1).is_err(),
        "three from two addresses"
    );
    assert!(bans.check_address(b, 1).is_ok());
    assert!(bans.check_address(a, 1).is_ok(), "two from a");
    bans.note(a, None, 2);
    let listed = bans.list(2, 10);
    let subjects: Vec<&str> = listed.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(subjects, ["address:192.0.2.1", "session:s1"]);
    assert_eq!(bans.list(2, 1).len(), 1, "bounded page");
    assert_eq!(bans.metrics.bans_active.get(), 2);
    let subject = Subject::parse("session:s1").unwrap();
    assert!(bans.lift(&subject, 2));
    assert!(!bans.lift(&subject, 2), "already lifted");
    assert!(bans.check_session("s1", 2).is_ok());
    assert_eq!(Subject::parse("192.0.2.1"), Some(Subject::Address(a)));
    assert_eq!(Subject::parse("address:nope"), None);
    assert_eq!(bans.purge(2), 1);
    assert_eq!(bans.purge(1_000), 0);
    assert_eq!(bans.metrics.bans_active.get(), 0);
    assert_eq!(bans.check_address(a, 1_000), Ok(()));
}
