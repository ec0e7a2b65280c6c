//! nginx `auth_request` and Caddy `forward_auth` in front of the real
//! collector, each running its shipped site config (`deploy/nginx/`,
//! `deploy/caddy/`, only the addresses rewritten to loopback), asking the
//! real telegate binary:
//!
//! ```text
//! reqwest --POST /v1/metrics--> nginx | Caddy --GET /auth--> telegate
//!                                  | 2xx only
//!                                  v
//!                                rotel (log file: what was delivered)
//! ```
//!
//! A signed export arrives; unsigned and stale ones are 401; past the rate
//! limit the client gets 429 with telegate's `Retry-After`. Caddy hands
//! telegate's JSON refusal on as it is; nginx answers with its own page, so
//! there the reason is read from telegate's counters. Below them, in
//! process: the header names `/auth` reads the original method and URI from
//! (`auth.forwarded_*_header`, nginx's `X-Original-URI`) and their checks.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_proxies:: -- --nocapture`

use std::time::Duration;

use prost::Message;
use telegate::config::{self, ConfigSource, MapEnv};

use crate::support::otlp::{export_request, unix_now};
use crate::support::proxies::Proxy;
use crate::support::stack::{deploy_file, keygen, template, Rotel, Telegate};
use crate::support::*;

/// How long an allowed export may take to show up in rotel's output.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many requests to trip the limit (burst 4, 1/s).
const MAX_RATE_LIMIT_TRIES: usize = 12;
/// The one counter read (a name of `{ns}`'s metrics: kept here only).
const AUTH_FAILED: &str = "telegate_auth_failed_total";
const SIGNED_PATH: &str = "/v1/metrics";

/// What telegate is told to read behind nginx (as deploy/nginx/telegate.conf says).
const NGINX_HEADERS: &str = r#"forwarded_method_header = "X-Original-Method"
forwarded_uri_header = "X-Original-URI""#;

/// One key, a limit a loop trips in a few requests, the given `[auth]` lines.
fn telegate_config(auth: &str) -> String {
    format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]

[auth]
max_skew_secs = 300
{auth}

[[auth.keys]]
id = "e2e"
file = "e2e.key"

[rate_limit]
per_second = 1
burst = 4

[log]
level = "info"
"#
    )
}

#[tokio::test]
async fn nginx_auth_request_guards_the_collector() {
    let Some(tools) = require_tools("e2e_proxies", &["nginx", "rotel-agent"]) else {
        return;
    };
    let mut backends = Backends::start(&tools, "nginx", NGINX_HEADERS).await;
    let port = free_port();
    let site = template(
        &deploy_file("nginx/telegate.conf"),
        &[
            ("telegate-auth:8080", backends.telegate_addr()),
            ("otel-collector:4318", backends.rotel_addr()),
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
        ],
    );
    let nginx = Proxy::nginx(&tools, &backends.work, port, &site).await;
    backends.guarded_by(&nginx, Refusals::StatusOnly).await;
}

#[tokio::test]
async fn caddy_forward_auth_guards_the_collector() {
    let Some(tools) = require_tools("e2e_proxies", &["caddy", "rotel-agent"]) else {
        return;
    };
    // Caddy sends X-Forwarded-Method / -Uri: the defaults.
    let mut backends = Backends::start(&tools, "caddy", "").await;
    let port = free_port();
    let caddyfile = template(
        &deploy_file("caddy/Caddyfile"),
        &[
            ("otlp.example.org {", format!("http://127.0.0.1:{port} {{")),
            ("telegate-auth:8080", backends.telegate_addr()),
            ("otel-collector:4318", backends.rotel_addr()),
        ],
    );
    let caddy = Proxy::caddy(&tools, &backends.work, port, &caddyfile).await;
    backends.guarded_by(&caddy, Refusals::Json).await;
}

/// What stands behind the proxy: rotel and telegate (with `auth` lines in
/// its `[auth]`), in one workdir. Fields drop in order: the processes
/// before the dir (kept with their logs when the test fails).
struct Backends {
    rotel: Rotel,
    telegate: Telegate,
    secret: String,
    work: Workdir,
}

impl Backends {
    async fn start(tools: &Tools, proxy: &str, auth: &str) -> Backends {
        let work = Workdir::new(&format!("telegate-e2e-{proxy}"));
        let secret = keygen();
        work.write("e2e.key", &secret);
        let rotel = Rotel::start(tools, &work).await;
        let telegate = Telegate::start(&work, &telegate_config(auth)).await;
        Backends {
            rotel,
            telegate,
            secret,
            work,
        }
    }

    fn telegate_addr(&self) -> String {
        format!("127.0.0.1:{}", self.telegate.port)
    }

    fn rotel_addr(&self) -> String {
        format!("127.0.0.1:{}", self.rotel.http_port)
    }

    async fn guarded_by(&mut self, proxy: &Proxy, refusals: Refusals) {
        let front = Front::new(proxy.url(SIGNED_PATH), &self.secret, refusals);
        front.guards(&mut self.rotel, &self.telegate).await;
    }
}

/// What a refusal looks like when it reaches the client.
#[derive(Clone, Copy, PartialEq)]
enum Refusals {
    /// telegate's JSON body, as Caddy passes it on.
    Json,
    /// The proxy's own page with telegate's status (nginx `auth_request`).
    StatusOnly,
}

/// A client in front of one proxy: one session, v1 signatures, one metric
/// name per export so "not delivered" is a grep that finds nothing.
struct Front {
    http: reqwest::Client,
    url: String,
    secret: String,
    run: String,
    session: String,
    refusals: Refusals,
}

impl Front {
    fn new(url: String, secret: &str, refusals: Refusals) -> Front {
        let run = keygen()[..12].to_owned();
        Front {
            http: http_client(),
            url,
            secret: secret.to_owned(),
            session: format!("e2e-session-{run}"),
            run,
            refusals,
        }
    }

    fn name(&self, case: &str) -> String {
        format!("e2e_{case}_{}", self.run)
    }

    /// POSTs an export named `name`, signed at `timestamp` (or unsigned).
    async fn post(&self, name: &str, timestamp: Option<i64>) -> Reply {
        let mut request = self
            .http
            .post(&self.url)
            .header("Content-Type", PROTOBUF)
            .body(export_request(name, &self.run).encode_to_vec());
        if let Some(timestamp) = timestamp {
            let signed = kms_headers(&self.secret, "POST", SIGNED_PATH, timestamp, &self.session);
            request = add_headers(request, &signed);
        }
        Reply::of(request.send().await.expect("POST through the proxy")).await
    }

    fn refused(&self, reply: &Reply, status: u16, reason: &str) {
        match self.refusals {
            Refusals::Json => reply.assert_refused_json(status, reason),
            Refusals::StatusOnly => assert_eq!(reply.status, status, "{reason}: {reply:?}"),
        }
    }

    /// Signed arrives, unsigned 401, stale 401, limited 429 + Retry-After;
    /// nothing refused reaches the collector.
    async fn guards(&self, rotel: &mut Rotel, telegate: &Telegate) {
        let ok = self.name("ok");
        let reply = self.post(&ok, Some(unix_now())).await;
        assert_eq!(reply.status, 200, "signed export: {reply:?}");
        assert_eq!(
            reply.content_type.as_deref(),
            Some(PROTOBUF),
            "the 200 should be the collector's own answer: {reply:?}"
        );
        rotel
            .wait_for(&format!("-> Name: {ok}\n"), DELIVERY_TIMEOUT)
            .await;

        let unsigned = self.name("unsigned");
        let reply = self.post(&unsigned, None).await;
        self.refused(&reply, 401, "missing_signature");

        let stale = self.name("stale");
        let reply = self.post(&stale, Some(unix_now() - 400)).await;
        self.refused(&reply, 401, "stale_timestamp");

        let mut limited = None;
        for i in 0..MAX_RATE_LIMIT_TRIES {
            let name = self.name(&format!("burst_{i:02}"));
            let reply = self.post(&name, Some(unix_now())).await;
            match reply.status {
                200 => {}
                429 => {
                    limited = Some((name, reply));
                    break;
                }
                _ => panic!("request {i} of the burst: expected 200 or 429, got {reply:?}"),
            }
        }
        let (limited, reply) = limited
            .unwrap_or_else(|| panic!("no 429 after {MAX_RATE_LIMIT_TRIES} requests (burst 4)"));
        self.refused(&reply, 429, "rate_limited");
        let retry_after: u64 = reply
            .retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("429 without whole-second Retry-After: {reply:?}"));
        assert!(retry_after >= 1, "Retry-After: {retry_after}");

        // Barrier: once the limit lets this one through and rotel printed
        // it, anything forwarded before it would be printed too.
        let sentinel = self.name("sentinel");
        poll_until(
            "the limit to let the sentinel through",
            DELIVERY_TIMEOUT,
            || async {
                match self.post(&sentinel, Some(unix_now())).await.status {
                    200 => Ok(()),
                    status => Err(format!("status {status}")),
                }
            },
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        rotel
            .wait_for(&format!("-> Name: {sentinel}\n"), DELIVERY_TIMEOUT)
            .await;
        let seen = rotel.output();
        for name in [&unsigned, &stale, &limited] {
            assert!(
                !seen.contains(name.as_str()),
                "{name} was refused but reached the collector"
            );
        }

        // telegate decided each refusal for the reason expected.
        let metrics = telegate.metrics().await;
        for reason in ["missing_signature", "stale_timestamp", "rate_limited"] {
            let series = format!("{AUTH_FAILED}{{reason=\"{reason}\"}}");
            let value = sample(&metrics, &series);
            assert!(value >= Some(1.0), "{series} = {value:?}:\n{metrics}");
        }
    }
}

// ---------------------------------------------------------------- in process

/// `[auth]` lines after the keys of [`config_with`] (TOML allows the table
/// after its array of tables).
fn with_auth(lines: &str) -> String {
    config_with(&format!("[auth]\n{lines}"))
}

/// A v1 signature over `POST /v1/metrics`, named as nginx's `auth_request`
/// names it (`X-Original-*`) with `uri`.
fn nginx_signed(uri: &str) -> Headers {
    let mut headers = kms_headers(SECRET_A, "POST", "/v1/metrics", NOW, SESSION);
    headers.push(("X-Original-Method", "POST".into()));
    headers.push(("X-Original-URI", uri.into()));
    headers
}

#[tokio::test]
async fn auth_reads_the_original_request_from_the_configured_headers() {
    let server = start_server(&with_auth(NGINX_HEADERS)).await;
    let nginx = nginx_signed("/v1/metrics?x=1");
    let response = server.auth_request(&nginx).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-key-id"], "a");

    // Traefik's names are not read once others are configured: behind
    // nginx they are the client's own headers.
    let response = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(
        reason_of(response).await,
        (401, "missing_forwarded_uri".into())
    );

    // Without the method header the subrequest's own (GET) is signed over.
    let no_method = with(nginx, "X-Original-Method", None);
    let response = server.auth_request(&no_method).send().await.unwrap();
    assert_eq!(reason_of(response).await, (403, "bad_signature".into()));
    server.stop().await;
}

#[tokio::test]
async fn a_configured_uri_header_routes_root_to_forward_auth() {
    let server = start_server(&with_auth(NGINX_HEADERS)).await;
    let headers = nginx_signed("/v1/metrics");
    let response = add_headers(server.client.get(server.url("/")), &headers)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-status"], "valid");
    server.stop().await;
}

#[test]
fn forwarded_header_names_are_checked_by_key() {
    let load = |lines: &str| {
        config::from_text(
            &with_auth(lines),
            &ConfigSource::File("telegate.toml".into()),
            &MapEnv::default(),
        )
    };
    let settings = load("").expect("the defaults load");
    assert_eq!(settings.forwarded.method.as_str(), "x-forwarded-method");
    assert_eq!(settings.forwarded.uri.as_str(), "x-forwarded-uri");
    let settings = load(NGINX_HEADERS).expect("nginx's names load");
    assert_eq!(settings.forwarded.uri.as_str(), "x-original-uri");

    let err = load("forwarded_uri_header = \"X Original\"").unwrap_err();
    assert!(
        err.to_string().starts_with("auth.forwarded_uri_header:"),
        "{err}"
    );
    let err = load("forwarded_method_header = \"\"").unwrap_err();
    assert!(
        err.to_string().starts_with("auth.forwarded_method_header:"),
        "{err}"
    );
    let err = load("forwarded_method_header = \"X-Forwarded-Uri\"").unwrap_err();
    assert!(err.to_string().contains("must differ"), "{err}");
}
