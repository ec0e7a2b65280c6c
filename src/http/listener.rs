//! `ops_listen`: the operations endpoints on their own listener, so that
//! exposing the ingest port to the internet exposes neither key ids and
//! figures (`/metrics`, the status pages) nor the admin API.
//!
//! Without `ops_listen` one listener serves every route ([`Role::Single`],
//! as before). With it, the main listener ([`Role::Main`]) answers the
//! operations routes 404 `not_found`, exactly like a path that does not
//! exist (a scanner learns nothing), and takes no admin token (an admin
//! credential there is `admin_disabled`); the operations listener
//! ([`Role::Ops`]) serves them and answers the client routes (`/auth`, the
//! OTLP ingest) 404. `/health` and `/ready` are on both: an orchestrator
//! may probe either. Each listener has its own accept loop with the same
//! `[server]` timeouts and connection caps, so a flood on one cannot take
//! the other's slots.

use std::future::Future;

use http::request::Parts;
use http::Method;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::state::AppState;
use super::{server, sessions};
use crate::protocol::headers::X_FORWARDED_URI;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No `ops_listen`: one listener serves everything.
    Single,
    /// `listen` beside an `ops_listen`: the client routes only.
    Main,
    /// `ops_listen`: the operations and administration routes.
    Ops,
    /// `ingest.grpc_listen`: the OTLP/gRPC Export methods only
    /// ([`super::grpc`]; the router is never asked).
    Grpc,
}

/// Whether `role`'s listener answers this request (else 404 `not_found`).
/// On the main listener, a few string comparisons: nothing on the request
/// path worth measuring.
pub fn serves(role: Role, parts: &Parts) -> bool {
    let path = parts.uri.path();
    match role {
        Role::Single => true,
        Role::Grpc => false,
        Role::Main => !operations(path, &parts.method, parts),
        Role::Ops => {
            operations(path, &parts.method, parts)
                || matches!(path, "/health" | "/ready")
                // Per-session routes and `POST /sessions` are the owners' and
                // signed clients' as well as the admin's: on both listeners.
                || sessions::handles(path)
        }
    }
}

/// The routes only the operations listener serves: `/metrics`, the status
/// pages, the bans, the spool's dead letters, and the session API's
/// admin-only routes (list and wipe, stats, a user's sessions).
fn operations(path: &str, method: &Method, parts: &Parts) -> bool {
    match path {
        "/metrics" | "/waiting" | "/spool/dead-letters" | "/sessions/stats" => true,
        // `/` is forwardAuth with X-Forwarded-Uri and ingest when POSTed;
        // otherwise the status page.
        "/" => !parts.headers.contains_key(&X_FORWARDED_URI) && *method != Method::POST,
        "/sessions" => *method != Method::POST,
        _ => path == "/bans" || path.starts_with("/bans/") || path.starts_with("/users/"),
    }
}

/// Serves `main` (and `ops`, and `grpc`, when given) until `shutdown`
/// resolves; all stop together, each draining within the grace period.
pub async fn run(
    main: TcpListener,
    ops: Option<TcpListener>,
    grpc: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = watch::channel(false);
    let stopping = |mut stopped: watch::Receiver<bool>| async move {
        // A dropped sender (cannot happen before the send) also stops.
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let main_role = if ops.is_some() {
        Role::Main
    } else {
        Role::Single
    };
    let optional = |listener: Option<TcpListener>, role: Role, stopped| {
        let state = state.on(role);
        async move {
            if let Some(listener) = listener {
                server::run(listener, state, stopping(stopped)).await;
            }
        }
    };
    tokio::join!(
        async {
            shutdown.await;
            let _ = stop.send(true);
        },
        server::run(main, state.on(main_role), stopping(stopped.clone())),
        optional(ops, Role::Ops, stopped.clone()),
        optional(grpc, Role::Grpc, stopped),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str, forwarded: bool) -> Parts {
        let mut request = http::Request::builder().method(method).uri(uri);
        if forwarded {
            request = request.header("X-Forwarded-Uri", "/v1/metrics");
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn each_listener_serves_its_routes() {
        let ops_only = [
            (Method::GET, "/metrics", false),
            (Method::GET, "/", false),
            (Method::HEAD, "/waiting", false),
            (Method::GET, "/bans", false),
            (Method::DELETE, "/bans/203.0.113.9", false),
            (Method::GET, "/spool/dead-letters", false),
            (Method::GET, "/sessions", false),
            (Method::DELETE, "/sessions", false),
            (Method::GET, "/sessions/stats", false),
            (Method::DELETE, "/users/alice/sessions", false),
        ];
        for (method, uri, fwd) in ops_only {
            let p = parts(method.clone(), uri, fwd);
            assert!(
                !serves(Role::Main, &p),
                "main must not serve {method} {uri}"
            );
            assert!(serves(Role::Ops, &p), "ops serves {method} {uri}");
            assert!(serves(Role::Single, &p));
        }
        let main_only = [
            (Method::GET, "/auth", false),
            (Method::GET, "/", true),
            (Method::POST, "/", false),
            (Method::POST, "/v1/metrics", false),
        ];
        for (method, uri, fwd) in main_only {
            let p = parts(method.clone(), uri, fwd);
            assert!(serves(Role::Main, &p), "main serves {method} {uri}");
            assert!(!serves(Role::Ops, &p), "ops must not serve {method} {uri}");
        }
        let both = [
            (Method::GET, "/health", false),
            (Method::GET, "/ready", false),
            (Method::POST, "/sessions", false),
            (Method::GET, "/sessions/abc", false),
            (Method::POST, "/sessions/abc/refresh", false),
        ];
        for (method, uri, fwd) in both {
            let p = parts(method.clone(), uri, fwd);
            assert!(
                serves(Role::Main, &p) && serves(Role::Ops, &p),
                "{method} {uri}"
            );
        }
    }
}
