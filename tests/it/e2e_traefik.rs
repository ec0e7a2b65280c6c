//! End to end through real components: an OTLP/HTTP client posts signed
//! metric exports to Traefik, whose forwardAuth middleware asks the real
//! telegate binary, and only what telegate allows reaches the collector
//! (rotel, which prints every metric it decodes).
//!
//! ```text
//! reqwest --POST /v1/metrics--> Traefik --GET /auth[?policy=tight]--> telegate
//!                                  | 2xx only
//!                                  v
//!                                rotel (log file: what was delivered)
//! ```
//!
//! Every export carries its own metric name, so "not delivered" is a grep
//! that finds nothing, after a later allowed export has been seen (rotel
//! prints in arrival order, so the sentinel proves the earlier ones would be
//! there by now).
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_traefik:: -- --nocapture`
//! (tools: `scripts/install-tools`; without them and without the variable the
//! test prints SKIPPED and passes).

use std::time::Duration;

use crate::support::otlp::{export_request, unix_now};
use crate::support::stack::{keygen, Rotel, Telegate, Traefik};
use crate::support::{
    add_headers, http_client, kms_headers, require_tools, sample, Reply, Workdir, PROTOBUF,
};
use prost::Message;

/// How long an allowed export may take to show up in rotel's output
/// (measured: about 10 ms).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many requests to trip the tight policy's limit (burst 2).
const MAX_RATE_LIMIT_TRIES: usize = 10;

/// The request header that selects the Traefik router using `?policy=tight`.
const TIGHT_ROUTE_HEADER: &str = "x-e2e-route";

const SIGNED_PATH: &str = "/v1/metrics";

#[tokio::test]
async fn traefik_forward_auth_guards_the_collector() {
    let Some(tools) = require_tools("e2e_traefik", &["traefik", "rotel-agent"]) else {
        return;
    };
    // Declared first, dropped last: the processes below are killed (and their
    // logs printed on failure) before the dir is removed or kept.
    let work = Workdir::new("telegate-e2e-traefik");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("e2e.key", &secret);

    let mut rotel = Rotel::start(&tools, &work).await;
    let telegate = Telegate::start(&work, TELEGATE_CONFIG).await;
    let dynamic = traefik_dynamic(telegate.port, &rotel.url());
    let traefik = Traefik::start(&tools, &work, &dynamic, SIGNED_PATH).await;

    let client = Client {
        http: http_client(),
        url: traefik.url(SIGNED_PATH),
        run: run.clone(),
        session: format!("e2e-session-{run}"),
    };
    let now = unix_now();

    // 1. A signed export goes through, and the 200 is the collector's own
    //    answer (protobuf), not telegate's JSON verdict.
    let ok = client.metric_name("ok");
    let reply = client
        .post(&ok, Auth::Signed(&secret, now), Route::Default)
        .await;
    assert_eq!(reply.status, 200, "signed export: {reply:?}");
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/x-protobuf"),
        "the 200 should come from the collector: {reply:?}"
    );
    rotel
        .wait_for(&format!("-> Name: {ok}\n"), DELIVERY_TIMEOUT)
        .await;
    let seen = rotel.output();
    assert!(
        seen.contains(&format!("-> e2e.run_id: Str({run})")),
        "rotel should print this run's resource attribute"
    );

    // 2. Unsigned: 401 missing_signature.
    let unsigned = client.metric_name("unsigned");
    let reply = client.post(&unsigned, Auth::None, Route::Default).await;
    reply.assert_refused_json(401, "missing_signature");

    // 3. Signed with a key telegate does not hold: 403 bad_signature.
    let wrong_key = client.metric_name("wrong_key");
    let other_secret = keygen();
    let reply = client
        .post(&wrong_key, Auth::Signed(&other_secret, now), Route::Default)
        .await;
    reply.assert_refused_json(403, "bad_signature");

    // 4. Right key, timestamp beyond the 300 s window: 401 stale_timestamp.
    let stale = client.metric_name("stale");
    let reply = client
        .post(&stale, Auth::Signed(&secret, now - 400), Route::Default)
        .await;
    reply.assert_refused_json(401, "stale_timestamp");

    // 5. The tight policy (burst 2, 1/s): valid exports until one is 429.
    let mut allowed_before_limit = Vec::new();
    let mut limited = None;
    for i in 0..MAX_RATE_LIMIT_TRIES {
        let name = client.metric_name(&format!("tight_{i:02}"));
        let reply = client
            .post(&name, Auth::Signed(&secret, unix_now()), Route::Tight)
            .await;
        match reply.status {
            200 => allowed_before_limit.push(name),
            429 => {
                limited = Some((name, reply));
                break;
            }
            _ => panic!("tight route, request {i}: expected 200 or 429, got {reply:?}"),
        }
    }
    let Some((limited, reply)) = limited else {
        panic!("no 429 after {MAX_RATE_LIMIT_TRIES} requests on the tight policy (burst 2)");
    };
    reply.assert_refused_json(429, "rate_limited");
    let retry_after = reply
        .retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("429 without Retry-After: {reply:?}"));
    let retry_after: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {retry_after:?}"));
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    assert!(
        !allowed_before_limit.is_empty(),
        "the tight policy's burst should let at least one request through"
    );

    // Barrier: once this later export is printed, anything sent before it
    // that Traefik had forwarded would be printed too.
    let sentinel = client.metric_name("sentinel");
    let reply = client
        .post(&sentinel, Auth::Signed(&secret, unix_now()), Route::Default)
        .await;
    assert_eq!(reply.status, 200, "sentinel export: {reply:?}");
    rotel
        .wait_for(&format!("-> Name: {sentinel}\n"), DELIVERY_TIMEOUT)
        .await;
    let seen = rotel.output();
    for name in &allowed_before_limit {
        assert!(
            seen.contains(&format!("-> Name: {name}\n")),
            "{name} was allowed (200) but never reached the collector"
        );
    }
    for name in [&unsigned, &wrong_key, &stale, &limited] {
        assert!(
            !seen.contains(name.as_str()),
            "{name} was refused by telegate but reached the collector"
        );
    }

    // 6. telegate counted what it decided.
    let metrics = telegate.metrics().await;
    let value = |series: &str| {
        sample(&metrics, series)
            .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{metrics}"))
    };
    // ok + sentinel + the tight route's allowed ones.
    let successes = (2 + allowed_before_limit.len()) as f64;
    assert!(
        value("telegate_auth_success_total") >= successes,
        "telegate_auth_success_total should be at least {successes}:\n{metrics}"
    );
    for reason in [
        "missing_signature",
        "bad_signature",
        "stale_timestamp",
        "rate_limited",
    ] {
        let series = format!("telegate_auth_failed_total{{reason=\"{reason}\"}}");
        assert!(value(&series) >= 1.0, "{series} should be at least 1");
    }
    assert_eq!(
        value("telegate_auth_failed_total{reason=\"bad_signature\"}"),
        1.0
    );

    eprintln!(
        "e2e_traefik: run {run}: ok; tight policy allowed {} then 429 (Retry-After {retry_after})",
        allowed_before_limit.len()
    );
}

/// telegate: one key (file written by the test), the default limit for
/// `/auth`, and a tight policy for `/auth?policy=tight`. Traefik's
/// `X-Forwarded-For: 127.0.0.1` is believed, so the limits key on 127.0.0.1.
const TELEGATE_CONFIG: &str = r#"
trusted_proxies = ["127.0.0.1/32"]

[auth]
max_skew_secs = 300

[[auth.keys]]
id = "e2e"
file = "e2e.key"

[rate_limit]
per_second = 10
burst = 20

[policies.tight]
rate_limit = { per_second = 1, burst = 2 }

[log]
level = "info"
"#;

/// Two routers to the collector: the plain one through `/auth`, and one
/// selected by a request header through `/auth?policy=tight` (the longer
/// rule also wins by Traefik's default priority; it is set explicitly).
fn traefik_dynamic(telegate_port: u16, collector_url: &str) -> String {
    let forward_auth = |address: String| {
        format!(
            r#"      forwardAuth:
        address: "{address}"
        trustForwardHeader: false
        maxResponseBodySize: 65536
        authResponseHeaders:
          - X-Auth-Session-Id
          - X-Auth-Client-Version
          - X-Auth-Key-Id
          - X-Auth-Status"#
        )
    };
    let auth = format!("http://127.0.0.1:{telegate_port}/auth");
    format!(
        r#"http:
  routers:
    otlp:
      entryPoints: [web]
      rule: "PathPrefix(`/v1`)"
      priority: 10
      middlewares: [gate-auth]
      service: collector
    otlp-tight:
      entryPoints: [web]
      rule: "PathPrefix(`/v1`) && Header(`{TIGHT_ROUTE_HEADER}`, `tight`)"
      priority: 20
      middlewares: [gate-auth-tight]
      service: collector
  middlewares:
    gate-auth:
{default}
    gate-auth-tight:
{tight}
  services:
    collector:
      loadBalancer:
        servers:
          - url: "{collector_url}"
"#,
        default = forward_auth(auth.clone()),
        tight = forward_auth(format!("{auth}?policy=tight")),
    )
}

// ---------------------------------------------------------------- client

/// How a request is authenticated.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    /// Signed v1 with this secret text and Unix timestamp.
    Signed(&'a str, i64),
}

#[derive(Clone, Copy)]
enum Route {
    Default,
    Tight,
}

/// A KOTORModSync-like exporter: one session, v1 signatures.
struct Client {
    http: reqwest::Client,
    url: String,
    run: String,
    session: String,
}

impl Client {
    /// A metric name no other request of any run uses.
    fn metric_name(&self, case: &str) -> String {
        format!("e2e_{case}_{}", self.run)
    }

    async fn post(&self, metric_name: &str, auth: Auth<'_>, route: Route) -> Reply {
        let mut request = self
            .http
            .post(&self.url)
            .header("Content-Type", PROTOBUF)
            .body(export_request(metric_name, &self.run).encode_to_vec());
        if let Auth::Signed(secret, timestamp) = auth {
            let signed = kms_headers(secret, "POST", SIGNED_PATH, timestamp, &self.session);
            request = add_headers(request, &signed);
        }
        if let Route::Tight = route {
            request = request.header(TIGHT_ROUTE_HEADER, "tight");
        }
        Reply::of(request.send().await.expect("POST through Traefik")).await
    }
}
