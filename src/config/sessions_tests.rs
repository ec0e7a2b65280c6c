//! Tests of the `[sessions]` settings: PostgreSQL URLs and their password
//! file, and the client-address privacy levels.

use super::*;

#[test]
fn postgres_urls_are_checked_and_the_password_file_kept() {
    let section = |url: &str, file: &str| SessionsSection {
        store: StoreKind::Postgres,
        postgres_url: url.into(),
        postgres_password_file: file.into(),
        ..SessionsSection::default()
    };
    let ok = postgres_settings(&section("postgresql://u@db:5432/tg", " /run/pw ")).unwrap();
    assert_eq!(ok.password_file, Some(std::path::PathBuf::from("/run/pw")));
    assert_eq!(
        postgres_settings(&section("postgres://u@db/tg", ""))
            .unwrap()
            .password_file,
        None
    );
    for bad in [
        "redis://db",
        "host=db user=u",
        "postgres://u@db/tg?sslmode=require",
    ] {
        let err = postgres_settings(&section(bad, "")).unwrap_err();
        assert!(
            err.to_string().contains("sessions.postgres_url"),
            "{bad}: {err}"
        );
    }
    let shown = serde_json::to_string(
        &postgres_settings(&section("postgres://u:s3cret@db/tg", "")).unwrap(),
    )
    .unwrap();
    assert!(
        !shown.contains("s3cret") && shown.contains("db/tg"),
        "{shown}"
    );
}

#[test]
fn ip_privacy_levels() {
    let v4: IpAddr = "203.0.113.77".parse().unwrap();
    let v6: IpAddr = "2001:db8:1:2:3::9".parse().unwrap();
    assert_eq!(StoreIp::Full.apply(v4).as_deref(), Some("203.0.113.77"));
    assert_eq!(
        StoreIp::Truncated.apply(v4).as_deref(),
        Some("203.0.113.0/24")
    );
    assert_eq!(
        StoreIp::Truncated.apply(v6).as_deref(),
        Some("2001:db8:1::/48")
    );
    assert_eq!(StoreIp::None.apply(v4), None);
}
