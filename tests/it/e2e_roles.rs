//! A pretend admin page behind real Traefik, guarded by telegate with
//! `policy=admin` (issue 14): roles granted at `POST /sessions` decide.
//!
//! ```text
//! reqwest --> Traefik /admin/* --forwardAuth /auth?policy=admin--> telegate
//!                  | 2xx only, X-Auth-Roles copied
//!                  v
//!             loopback backend (records what arrived)
//! ```
//!
//! A session with role `admin` reaches the page and its roles reach the
//! backend; a session without it gets 403 `insufficient_role`; the
//! excluded `/admin/public` passes with no credential, and an encoded
//! `..` out of it does not.

use crate::support::collector::FakeCollector;
use crate::support::stack::{keygen, Telegate, Traefik};
use crate::support::{http_client, require_tools, Reply, Workdir};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";

const TELEGATE_CONFIG: &str = r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "e2e"
file = "e2e.key"
[admin]
token_file = "admin.token"
[sessions]
store = "memory"
[policies.admin]
methods = ["session"]
require_roles = ["admin"]
excluded_paths = ["/admin/public"]
"#;

fn traefik_dynamic(telegate_port: u16, backend: &str) -> String {
    format!(
        r#"http:
  routers:
    admin-page:
      entryPoints: [web]
      rule: "PathPrefix(`/admin`)"
      middlewares: [admin-auth]
      service: admin-page
  middlewares:
    admin-auth:
      forwardAuth:
        address: "http://127.0.0.1:{telegate_port}/auth?policy=admin"
        trustForwardHeader: false
        authResponseHeaders:
          - X-Auth-Session-Id
          - X-Auth-Status
          - X-Auth-User
          - X-Auth-Roles
          - X-Auth-Permissions
        authResponseHeadersRegex: "^X-Auth-"
  services:
    admin-page:
      loadBalancer:
        servers:
          - url: "{backend}"
"#
    )
}

#[tokio::test]
async fn an_admin_page_behind_traefik_lets_in_only_the_admin_role() {
    let Some(tools) = require_tools("e2e_roles", &["traefik"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-roles");
    work.write("admin.token", ADMIN_TOKEN);
    // `/ready` wants a live key, though this page takes only sessions.
    work.write("e2e.key", &keygen());
    let backend = FakeCollector::start().await;
    let telegate = Telegate::start(&work, TELEGATE_CONFIG).await;
    let dynamic = traefik_dynamic(telegate.port, &backend.url());
    let traefik = Traefik::start(&tools, &work, &dynamic, "/admin/public/ready").await;
    let client = http_client();
    let issue = |body: Value| {
        let client = client.clone();
        let url = telegate.url("/sessions");
        async move {
            let response = client
                .post(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("POST /sessions");
            assert_eq!(response.status(), 201);
            let body: Value = response.json().await.unwrap();
            body["token"].as_str().unwrap().to_string()
        }
    };
    let admin = issue(json!({"user_id": "ann", "roles": ["admin", "ops"]})).await;
    let viewer = issue(json!({"user_id": "vic", "roles": ["viewer"]})).await;
    let page = traefik.url("/admin/dashboard");

    let response = client
        .get(&page)
        .bearer_auth(&admin)
        .header("X-Auth-Roles", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = backend.received();
    let arrived = received
        .iter()
        .find(|r| r.path == "/admin/dashboard")
        .expect("the admin page was reached");
    assert_eq!(arrived.headers["x-auth-roles"], "admin,ops");
    assert_eq!(arrived.headers["x-auth-user"], "ann");
    assert!(arrived.headers.get("x-auth-permissions").is_none());

    let reply = Reply::of(client.get(&page).bearer_auth(&viewer).send().await.unwrap()).await;
    reply.assert_refused_json(403, "insufficient_role");
    let reply = Reply::of(client.get(&page).send().await.unwrap()).await;
    reply.assert_refused_json(401, "invalid_session");

    let response = client
        .get(traefik.url("/admin/public/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply = Reply::of(
        client
            .get(traefik.url("/admin/public/%2e%2e/dashboard"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.assert_refused_json(401, "invalid_session");
    // Only the admin session's request reached the page; the escape never did.
    let paths: Vec<String> = backend.received().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.as_str() == "/admin/dashboard")
            .count(),
        1,
        "{paths:?}"
    );
    assert!(paths.iter().all(|p| !p.contains("%2e")), "{paths:?}");
    assert!(
        paths.iter().any(|p| p == "/admin/public/style.css"),
        "{paths:?}"
    );
}
