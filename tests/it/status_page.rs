//! The status pages over real HTTP: `GET /` shows the live figures (keys,
//! the last five minutes' decisions, refusals by reason, sessions) and never
//! a secret or a session id; `GET /waiting` sends the browser on once the
//! gateway is ready; `templates_dir` replaces the built-in pages. Then one
//! render of `/` in headless Chromium, checked for a real picture.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::{
    config_with, env_flag, poll_until, signed, start_server, start_server_with_files, valid, with,
    Proc, TestServer, Workdir, NOW, REQUIRE_ENV, SECRET_A, SECRET_B, SESSION,
};

/// Keys a and b (no not_after), one expiring in two days, one expired.
fn config() -> String {
    config_with(&format!(
        r#"
[[auth.keys]]
id = "soon"
file = "a.key"
not_after = "{}"

[[auth.keys]]
id = "retired"
file = "a.key"
not_after = "2020-01-01T00:00:00Z"

[status]
refresh_secs = 7
"#,
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs((NOW + 2 * 86400) as u64)
        )
    ))
}

async fn get(server: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = server.client.get(server.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// One allowed request (key a), two refused (bad signature, stale).
async fn some_traffic(server: &TestServer) {
    let ok = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let bad = with(valid(), "X-KMS-Signature", Some(&"0".repeat(64)));
    assert_eq!(
        server.auth_request(&bad).send().await.unwrap().status(),
        403
    );
    let stale = signed(SECRET_A, "POST", "/v1/metrics", NOW - 1000, SESSION);
    assert_eq!(
        server.auth_request(&stale).send().await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn the_index_shows_live_figures_and_no_secrets() {
    let server = start_server(&config()).await;
    some_traffic(&server).await;
    let (status, headers, html) = get(&server, "/").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["refresh"], "7");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(
        html.contains(r#"<meta http-equiv="refresh" content="7">"#),
        "{html}"
    );
    assert!(html.contains(&format!("version {}", env!("CARGO_PKG_VERSION"))));
    assert!(
        html.contains("Ready: answering forwardAuth decisions."),
        "{html}"
    );

    // Keys: state, not_after, last use (key a just verified the request).
    let now = "2027-01-15T08:00:00Z";
    assert!(
        html.contains(&format!(
            r#"<tr class="key-live"><td>a</td><td>live</td><td>none</td><td>{now} (0s ago)</td></tr>"#
        )),
        "{html}"
    );
    assert!(html.contains(
        r#"<tr class="key-live"><td>b</td><td>live</td><td>none</td><td>not since start</td></tr>"#
    ));
    assert!(html.contains(
        r#"<tr class="key-expiring"><td>soon</td><td>expiring</td><td>2027-01-17T08:00:00Z (in 2d 0h)</td>"#
    ));
    assert!(html.contains(r#"<tr class="key-expired"><td>retired</td><td>expired</td>"#));
    assert!(
        html.contains(r#"<div class="value">3 live</div>"#),
        "{html}"
    );

    // The last five minutes: 3 decisions, 1 allowed, 33.3 %.
    assert!(html.contains(r#"<div class="value">3</div>"#), "{html}");
    assert!(html.contains("1 allowed &middot; 2 refused"), "{html}");
    assert!(html.contains("33.3 %"), "{html}");
    assert!(html.contains(r#"<tr class="reason"><td>bad_signature</td><td>1</td><td>1</td></tr>"#));
    assert!(
        html.contains(r#"<tr class="reason"><td>stale_timestamp</td><td>1</td><td>1</td></tr>"#)
    );
    // One signed session is live.
    assert!(html.contains("1 signed &middot; 0 issued"), "{html}");

    // Nothing secret, no session id, no unfilled placeholder.
    for secret in [SECRET_A, SECRET_B, SESSION, "{{"] {
        assert!(!html.contains(secret), "the page shows {secret:?}");
    }

    // Six minutes later the window is empty again; the totals remain.
    server.set_now(NOW + 6 * 60);
    let (_, _, later) = get(&server, "/").await;
    assert!(later.contains("0 allowed &middot; 0 refused"), "{later}");
    assert!(later.contains("no decisions"));
    assert!(later.contains(r#"<tr class="reason"><td>bad_signature</td><td>0</td><td>1</td></tr>"#));
    assert!(later.contains("3 decisions since start"));
    server.stop().await;
}

#[tokio::test]
async fn the_waiting_page_sends_the_browser_on_when_ready() {
    let server = start_server(&config()).await;
    let (status, headers, html) = get(&server, "/waiting").await;
    assert_eq!(status, 200);
    assert_eq!(headers["refresh"], "7; url=/");
    assert!(
        html.contains(r#"<meta http-equiv="refresh" content="7; url=/">"#),
        "{html}"
    );
    assert!(html.contains("Please wait"));
    server.stop().await;

    // Every key expired: not ready, the page keeps waiting.
    let expired = r#"
listen = "127.0.0.1:0"
[[auth.keys]]
id = "old"
file = "a.key"
not_after = "2020-01-01T00:00:00Z"
"#;
    let server = start_server(expired).await;
    let (_, headers, html) = get(&server, "/waiting").await;
    assert_eq!(headers["refresh"], "10; url=/waiting");
    assert!(html.contains("No live signing key is loaded"), "{html}");
    let (_, _, index) = get(&server, "/").await;
    assert!(index.contains(r#"<div class="banner bad">"#), "{index}");
    server.stop().await;
}

#[tokio::test]
async fn only_get_and_head_are_served() {
    let server = start_server(&config()).await;
    for path in ["/", "/waiting"] {
        let head = server.client.head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        let put = server.client.put(server.url(path)).send().await.unwrap();
        assert_eq!(put.status(), 405, "PUT {path}");
    }
    // `POST /` is OTLP ingest (the shipped client posts there): unsigned, 401.
    let post = server.client.post(server.url("/")).send().await.unwrap();
    assert_eq!(post.status(), 401, "POST /");
    let post = server
        .client
        .post(server.url("/waiting"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405, "POST /waiting");
    server.stop().await;
}

#[tokio::test]
async fn templates_dir_replaces_the_built_in_pages() {
    let index = "<html><title>{{version}}</title><p id=k>{{keys_live}}</p>\
                 <table>{{key_rows}}</table><p>{{nope}}</p><p>{{ status_message }}</p></html>";
    let server =
        start_server_with_files(&config_with("[status]\ntemplates_dir = \"templates\""), &[]).await;
    // No folder yet: the built-in pages.
    let (_, _, html) = get(&server, "/").await;
    assert!(html.contains("<title>telegate status</title>"));
    // The folder appears with index.html only: read per request.
    let dir = server_dir(&server);
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("templates/index.html"), index).unwrap();
    let (status, headers, html) = get(&server, "/").await;
    assert_eq!(status, 200);
    assert!(html.starts_with(&format!(
        "<html><title>{}</title>",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(html.contains("<p id=k>2</p>"));
    assert!(html.contains(r#"<tr class="key-live"><td>a</td>"#));
    assert!(
        html.contains("<p>{{nope}}</p>"),
        "unknown placeholders stay: {html}"
    );
    assert_eq!(headers["refresh"], "10");
    assert!(
        headers.get("content-security-policy").is_none(),
        "an operator's template may load its own assets"
    );
    // waiting.html is missing there: the built-in one.
    let (_, _, waiting) = get(&server, "/waiting").await;
    assert!(waiting.contains("Please wait"));
    server.stop().await;
}

/// The temp dir holding the server's config (templates_dir is relative to it).
fn server_dir(server: &TestServer) -> PathBuf {
    server
        .state
        .settings()
        .status
        .templates_dir
        .as_ref()
        .and_then(|dir| dir.parent())
        .expect("templates_dir is set")
        .to_path_buf()
}

// ---------------------------------------------------------------- chromium

/// Debian's chromium, or `E2E_CHROMIUM`.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("E2E_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[tokio::test]
async fn headless_chromium_renders_the_status_page() {
    // scripts/install-tools skips chromium with this variable: so does the test.
    if env_flag("TELEGATE_SKIP_CHROMIUM") {
        eprintln!(
            "SKIPPED: headless_chromium_renders_the_status_page: TELEGATE_SKIP_CHROMIUM is set"
        );
        return;
    }
    let Some(browser) = chromium() else {
        assert!(
            !env_flag(REQUIRE_ENV),
            "chromium not found and {REQUIRE_ENV}=1 (scripts/install-tools installs it)"
        );
        eprintln!("SKIPPED: headless_chromium_renders_the_status_page: no chromium");
        return;
    };
    let server = start_server(&config()).await;
    some_traffic(&server).await;
    let work = Workdir::new("telegate-status-chromium");
    let shot = work.path().join("status.png");
    let profile = work.path().join("profile");
    let mut command = Command::new(&browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1024,768",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(server.url("/"))
        .env("HOME", work.path());
    let mut proc = Proc::spawn("chromium", command, work.path().join("chromium.log"));
    proc.wait_ready(
        "chromium to take the screenshot and exit",
        Duration::from_secs(90),
        || {
            std::future::ready(if shot.exists() {
                Ok(())
            } else {
                Err("no file yet".to_string())
            })
        },
    )
    .await;
    // The file is complete once chromium has exited.
    let _ = poll_until("chromium to exit", Duration::from_secs(20), || {
        std::future::ready(match proc.exited() {
            Some(_) => Ok(()),
            None => Err("running".to_string()),
        })
    })
    .await;
    let bytes = std::fs::read(&shot).expect("read the screenshot");
    if let Ok(dir) = std::env::var("STATUS_SCREENSHOT_DIR") {
        let _ = std::fs::write(PathBuf::from(dir).join("status.png"), &bytes);
    }
    assert!(
        bytes.len() > 10 * 1024,
        "screenshot only {} bytes",
        bytes.len()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut pixels).expect("PNG frame");
    assert_eq!((info.width, info.height), (1024, 768));
    let pixels = &pixels[..info.buffer_size()];
    let step = info.color_type.samples() * usize::from(info.bit_depth as u8 / 8).max(1);
    let mut colours = std::collections::BTreeSet::new();
    for pixel in pixels.chunks(step) {
        colours.insert(pixel.to_vec());
        if colours.len() > 50 {
            break;
        }
    }
    assert!(
        colours.len() > 50,
        "the page looks blank: only {} colours",
        colours.len()
    );
    server.stop().await;
}
