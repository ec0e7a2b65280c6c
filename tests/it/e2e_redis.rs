//! The Redis session store end to end: real telegate binaries on one real
//! `redis-server`, behind real Traefik.
//!
//! ```text
//!            /sessions ----------------------------.
//! reqwest -> Traefik :web                          +--> gates: tg-a, tg-b (round robin)
//!            /v1/* --forwardAuth--> Traefik :auth -'         |
//!              | 2xx only                                    v
//!              v                                          redis-server
//!            rotel
//! ```
//!
//! 1. Two replicas: a token issued through one is valid through the other,
//!    a refresh or logout anywhere kills the old token everywhere, a
//!    revocation through one is enforced by the other within 2 s, and the
//!    request counters of a signed session seen by both add up.
//! 2. Redis killed mid-run: HMAC `/auth` keeps answering 200, `/ready` and
//!    token checks and the session API say 503, and all come back when
//!    Redis does (restarted on the same port).
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_redis:: -- --nocapture`.

use std::time::{Duration, Instant};

use crate::support::otlp::unix_now;
use crate::support::stack::{keygen, Redis, Rotel, Telegate, Traefik};
use crate::support::tools::Tools;
use crate::support::{
    add_headers, free_port, http_client, kms_headers, poll_until, require_tools, sample, Reply,
    Workdir, POLL_INTERVAL,
};
use serde_json::{json, Value};

/// How long a revocation may take to reach another replica.
const PROPAGATION: Duration = Duration::from_secs(2);

fn config(redis: &Redis, prefix: &str) -> String {
    gate_config(&format!(
        "redis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\nflush_interval_ms = 1000",
        url = redis.url()
    ))
}

/// A gate on the Redis store: one key, no practical rate limit, the `app`
/// policy (signatures and tokens), the admin token; `sessions` are the
/// `[sessions]` lines after `store = "redis"` (also used by `e2e_sentinel`).
pub(crate) fn gate_config(sessions: &str) -> String {
    format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "e2e"
file = "e2e.key"
[rate_limit]
per_second = 100000
burst = 100000
[policies.app]
methods = ["hmac", "session"]
[sessions]
store = "redis"
{sessions}
[admin]
token_file = "admin.token"
[log]
level = "info"
"#
    )
}

/// A client of the stack: signs like KOTORModSync, holds the admin token
/// (also used by `e2e_postgres`).
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    secret: String,
    admin: String,
}

impl Client {
    fn signed(&self, request: reqwest::RequestBuilder, session: &str) -> reqwest::RequestBuilder {
        let headers = kms_headers(&self.secret, "POST", "/v1/metrics", unix_now(), session);
        add_headers(request, &headers)
    }

    /// `GET /auth` straight to one replica, as Traefik would send it.
    pub(crate) async fn auth(
        &self,
        gate: &Telegate,
        bearer: Option<&str>,
        session: Option<&str>,
    ) -> (u16, String) {
        let mut request = self
            .http
            .get(gate.url("/auth?policy=app"))
            .header("X-Forwarded-Method", "POST")
            .header("X-Forwarded-Uri", "/v1/metrics");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(session) = session {
            request = self.signed(request, session);
        }
        reason(request.send().await.expect("GET /auth")).await
    }

    /// An OTLP export through Traefik (forwardAuth to either replica).
    pub(crate) async fn export(
        &self,
        traefik: &Traefik,
        bearer: Option<&str>,
        session: Option<&str>,
    ) -> u16 {
        let mut request = self
            .http
            .post(traefik.url("/v1/metrics"))
            .header("Content-Type", "application/x-protobuf");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(session) = session {
            request = self.signed(request, session);
        }
        request
            .send()
            .await
            .expect("POST through Traefik")
            .status()
            .as_u16()
    }

    /// A session API call with the admin token (`base`: Traefik or one replica).
    pub(crate) async fn admin(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, url).bearer_auth(&self.admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("session API call");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Status and `reason` (empty when the answer has none, as a 200 has not).
async fn reason(response: reqwest::Response) -> (u16, String) {
    let reply = Reply::of(response).await;
    (reply.status, reply.reason().unwrap_or_default())
}

pub(crate) async fn auth_successes(gate: &Telegate) -> f64 {
    sample(&gate.metrics().await, "telegate_auth_success_total").unwrap_or(0.0)
}

pub(crate) fn setup(work: &Workdir) -> Client {
    let secret = keygen();
    let admin = keygen();
    work.write("e2e.key", &secret);
    work.write("admin.token", &admin);
    Client {
        http: http_client(),
        secret,
        admin,
    }
}

/// Traefik: `/sessions` balanced over both replicas; `/v1` behind
/// forwardAuth to the `auth` entrypoint, which balances `/auth` over both.
fn traefik_dynamic(gates: [&Telegate; 2], auth_port: u16, collector: &str) -> String {
    format!(
        r#"http:
  routers:
    api:
      entryPoints: [web]
      rule: "PathPrefix(`/sessions`)"
      service: gates
    gate:
      entryPoints: [auth]
      rule: "PathPrefix(`/auth`)"
      service: gates
    otlp:
      entryPoints: [web]
      rule: "PathPrefix(`/v1`)"
      middlewares: [gate-auth]
      service: collector
  middlewares:
    gate-auth:
      forwardAuth:
        address: "http://127.0.0.1:{auth_port}/auth?policy=app"
        trustForwardHeader: false
        maxResponseBodySize: 65536
        authResponseHeaders: [X-Auth-Session-Id, X-Auth-User, X-Auth-Status]
  services:
    gates:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{a}"
          - url: "http://127.0.0.1:{b}"
    collector:
      loadBalancer:
        servers:
          - url: "{collector}"
"#,
        a = gates[0].port,
        b = gates[1].port,
    )
}

/// Traefik in front of two replicas ([`traefik_dynamic`]), on an `auth`
/// entrypoint of its own.
pub(crate) async fn traefik_in_front(
    tools: &Tools,
    work: &Workdir,
    gates: [&Telegate; 2],
    rotel: &Rotel,
) -> Traefik {
    let auth_port = free_port();
    // The forwardAuth call reaches the `auth` entrypoint from Traefik itself:
    // it must believe the X-Forwarded-Method/-Uri that call carries.
    let extra = [
        format!("--entrypoints.auth.address=127.0.0.1:{auth_port}"),
        "--entrypoints.auth.forwardedHeaders.trustedIPs=127.0.0.1/32".to_owned(),
    ];
    let dynamic = traefik_dynamic(gates, auth_port, &rotel.url());
    Traefik::start_with_args(tools, work, &dynamic, "/sessions/stats", &extra).await
}

#[tokio::test]
async fn two_replicas_on_one_redis_behind_traefik() {
    let Some(tools) = require_tools("e2e_redis", &["traefik", "rotel-agent", "redis-server"])
    else {
        return;
    };
    let work = Workdir::new("telegate-e2e-redis");
    let client = setup(&work);
    let redis = Redis::start(&tools, &work).await;
    let rotel = Rotel::start(&tools, &work).await;
    let config = config(&redis, "e2e:");
    let a = Telegate::start_named(&work, "tg-a", &config).await;
    let b = Telegate::start_named(&work, "tg-b", &config).await;
    let traefik = traefik_in_front(&tools, &work, [&a, &b], &rotel).await;

    // A token issued through Traefik (either replica) opens /auth on both.
    let (status, issued) = client
        .admin(
            reqwest::Method::POST,
            traefik.url("/sessions"),
            Some(json!({"user_id": "alice"})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("token").to_owned();
    let session_id = issued["session_id"].as_str().expect("id").to_owned();
    for gate in [&a, &b] {
        assert_eq!(
            client.auth(gate, Some(&token), None).await,
            (200, String::new())
        );
    }
    let before = (auth_successes(&a).await, auth_successes(&b).await);
    for _ in 0..6 {
        assert_eq!(client.export(&traefik, Some(&token), None).await, 200);
    }
    let after = (auth_successes(&a).await, auth_successes(&b).await);
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "Traefik should balance /auth over both replicas: {before:?} -> {after:?}"
    );

    // A refresh through one kills the old token on both, at once.
    let refresh = traefik.url(&format!("/sessions/{session_id}/refresh"));
    let (status, refreshed) = client.admin(reqwest::Method::POST, refresh, None).await;
    assert_eq!(status, 200, "{refreshed}");
    let new_token = refreshed["token"].as_str().expect("token").to_owned();
    for gate in [&a, &b] {
        assert_eq!(
            client.auth(gate, Some(&token), None).await,
            (401, "invalid_session".into())
        );
        assert_eq!(client.auth(gate, Some(&new_token), None).await.0, 200);
    }
    // Logout with the token itself, through Traefik: dead on both.
    let logout = client
        .http
        .delete(traefik.url(&format!("/sessions/{session_id}")))
        .bearer_auth(&new_token)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 200);
    for gate in [&a, &b] {
        assert_eq!(
            client.auth(gate, Some(&new_token), None).await,
            (401, "invalid_session".into())
        );
    }

    // A signed session seen by both replicas: the counters add up.
    let signed = format!("e2e-signed-{}", &keygen()[..12]);
    let before = (auth_successes(&a).await, auth_successes(&b).await);
    for _ in 0..10 {
        assert_eq!(client.export(&traefik, None, Some(&signed)).await, 200);
    }
    let after = (auth_successes(&a).await, auth_successes(&b).await);
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "both replicas should have seen {signed}: {before:?} -> {after:?}"
    );
    let read = traefik.url(&format!("/sessions/{signed}"));
    let record = poll_until(
        "10 requests summed over both replicas",
        Duration::from_secs(5),
        || async {
            let (status, record) = client.admin(reqwest::Method::GET, read.clone(), None).await;
            match (status, record["requests"].as_u64()) {
                (200, Some(10)) => Ok(record),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(record["kind"], "signed");

    // A revocation through one is enforced by both within 2 s.
    let (status, revoked) = client
        .admin(reqwest::Method::DELETE, read.clone(), None)
        .await;
    assert_eq!(
        (status, &revoked["revoked"]),
        (200, &json!(true)),
        "{revoked}"
    );
    let revoked_at = Instant::now();
    let mut enforced = [None, None];
    while enforced.iter().any(Option::is_none) && revoked_at.elapsed() < Duration::from_secs(5) {
        for (i, gate) in [&a, &b].into_iter().enumerate() {
            if enforced[i].is_none()
                && client.auth(gate, None, Some(&signed)).await == (403, "session_revoked".into())
            {
                enforced[i] = Some(revoked_at.elapsed());
            }
        }
        // A bounded poll of both gates at once (each one's time is measured).
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    for (name, took) in ["tg-a", "tg-b"].iter().zip(enforced) {
        let took = took.unwrap_or_else(|| panic!("{name} never refused the revoked session"));
        assert!(
            took <= PROPAGATION,
            "{name} took {took:?} to enforce the revocation"
        );
    }
    for _ in 0..4 {
        assert_eq!(client.export(&traefik, None, Some(&signed)).await, 403);
    }
    eprintln!("e2e_redis: revocation enforced by both replicas after {enforced:?}");
    drop((traefik, rotel, a, b, redis));
}

#[tokio::test]
async fn a_redis_outage_degrades_and_recovers() {
    let Some(tools) = require_tools("e2e_redis", &["redis-server"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-redis-outage");
    let client = setup(&work);
    let redis = Redis::start(&tools, &work).await;
    let port = redis.port;
    let mut gate = Telegate::start(&work, &config(&redis, "outage:")).await;
    let (status, issued) = client
        .admin(
            reqwest::Method::POST,
            gate.url("/sessions"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("token").to_owned();

    drop(redis);
    let ready = gate.url("/ready");
    poll_until(
        "/ready = 503 store_unavailable",
        Duration::from_secs(5),
        || async {
            match reason(
                client
                    .http
                    .get(&ready)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?,
            )
            .await
            {
                (503, reason) if reason == "store_unavailable" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    // HMAC goes on from the local cache; the signed session waits to be written.
    let signed = format!("e2e-outage-{}", &keygen()[..12]);
    for _ in 0..5 {
        assert_eq!(
            client.auth(&gate, None, Some(&signed)).await,
            (200, String::new())
        );
    }
    assert_eq!(
        client.auth(&gate, Some(&token), None).await,
        (503, "store_unavailable".into())
    );
    let read = gate.url(&format!("/sessions/{signed}"));
    let (status, body) = client.admin(reqwest::Method::GET, read.clone(), None).await;
    assert_eq!(
        (status, &body["reason"]),
        (503, &json!("store_unavailable"))
    );
    let metrics = gate.metrics().await;
    let poll_errors = sample(&metrics, "telegate_store_errors_total{op=\"poll\"}");
    assert!(poll_errors.is_some_and(|n| n >= 1.0), "{metrics}");

    // Back on the same port (empty: no persistence): ready again, and the
    // sightings made during the outage are written.
    let _redis = Redis::start_on(&tools, &work, port).await;
    poll_until("/ready = 200", Duration::from_secs(10), || async {
        match client
            .http
            .get(&ready)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status()
            .as_u16()
        {
            200 => Ok(()),
            status => Err(status.to_string()),
        }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    let (status, record) = client.admin(reqwest::Method::GET, read, None).await;
    assert_eq!((status, &record["requests"]), (200, &json!(5)), "{record}");
    assert_eq!(client.auth(&gate, None, Some(&signed)).await.0, 200);
    let log = gate.proc.log_text();
    assert_eq!(
        log.matches("session store (redis) unreachable").count(),
        1,
        "logged once per outage"
    );
    assert!(gate.proc.exited().is_none(), "telegate must not crash");
}

/// A 15 KB User-Agent reaches Redis as its first 256 bytes: a signed
/// session recorded by one replica and written behind, and an issued one,
/// both read back through the other replica (so from Redis, not a local
/// cache).
#[tokio::test]
async fn long_user_agents_are_stored_cut_in_redis() {
    let Some(tools) = require_tools("e2e_redis", &["redis-server"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-redis-ua");
    let client = setup(&work);
    let redis = Redis::start(&tools, &work).await;
    let config = config(&redis, "ua:");
    let a = Telegate::start_named(&work, "tg-a", &config).await;
    let b = Telegate::start_named(&work, "tg-b", &config).await;
    let long = format!("Exporter/1.0 {}", "x".repeat(15_000));
    let cut = long[..256].to_owned();

    let session = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let request = client
        .http
        .get(a.url("/auth"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Uri", "/v1/metrics")
        .header("User-Agent", &long);
    let response = client.signed(request, session).send().await.expect("/auth");
    assert_eq!(response.status(), 200);
    let read = b.url(&format!("/sessions/{session}"));
    let record = poll_until(
        "the signed session in Redis",
        Duration::from_secs(5),
        || async {
            match client.admin(reqwest::Method::GET, read.clone(), None).await {
                (200, record) => Ok(record),
                (status, body) => Err(format!("{status} {body}")),
            }
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(record["user_agent"], json!(cut), "{record}");

    let response = client
        .http
        .post(a.url("/sessions"))
        .bearer_auth(&client.admin)
        .header("User-Agent", &long)
        .send()
        .await
        .expect("POST /sessions");
    assert_eq!(response.status(), 201);
    let issued: Value = response.json().await.expect("JSON");
    let id = issued["session_id"].as_str().expect("session_id");
    let (status, record) = client
        .admin(
            reqwest::Method::GET,
            b.url(&format!("/sessions/{id}")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["user_agent"], json!(cut), "{record}");
}
