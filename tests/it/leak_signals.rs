//! Leak signals over real HTTP (issue 10, part 6): one session id signed
//! from five client networks, and one network using many session ids, show
//! in the `{ns}_leak_*` gauges and on the status page, with bounded labels
//! and no raw session id anywhere.

use crate::support::*;

#[tokio::test]
async fn a_roaming_session_and_a_crowded_network_show_in_metrics_and_on_the_page() {
    let server = start_server(&config_with(
        "[rate_limit]\nper_second = 1000\nburst = 1000\n[status]\nsuspicious_network_sessions = 5\n",
    ))
    .await;
    let secret_session = "roaming-session-0123456789";
    for i in 0..5 {
        let headers = signed(SECRET_A, "POST", "/v1/metrics", NOW, secret_session);
        let response = server
            .auth_request(&with(
                headers,
                "X-Forwarded-For",
                Some(&format!("10.1.0.{i}")),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for i in 0..8 {
        let session = format!("crowd-{i}");
        let headers = signed(SECRET_A, "POST", "/v1/metrics", NOW, &session);
        let response = server
            .auth_request(&with(headers, "X-Forwarded-For", Some("10.2.0.1")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let text = server.scrape().await;
    assert_eq!(
        sample(&text, "telegate_leak_sessions_roaming"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "telegate_leak_networks_crowded"), Some(1.0));
    assert_eq!(
        sample(&text, "telegate_leak_key_networks{key=\"a\"}"),
        Some(6.0),
        "five networks for the roaming session, one for the crowd"
    );
    assert_eq!(
        sample(
            &text,
            "telegate_leak_client_version_requests{version=\"2.0.0.0\"}"
        ),
        Some(13.0)
    );
    assert!(
        !text.contains(secret_session),
        "no raw session id as a label"
    );
    let html = server
        .client
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Suspicious, last hour"), "{html}");
    assert!(
        html.contains("session seen from more than 3 networks"),
        "{html}"
    );
    assert!(
        html.contains("networks using more than 5 session ids"),
        "{html}"
    );
    assert!(
        !html.contains(secret_session),
        "only a short hash on the page"
    );
    server.stop().await;
}
