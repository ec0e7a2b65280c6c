//! The status pages of the original session manager, `GET /` and
//! `GET /waiting`: server-rendered HTML with live figures, reloaded by the
//! browser (`<meta http-equiv="refresh">` and a `Refresh` header; no script).
//!
//! `/` shows the version, uptime, the keys (live, expiring with their
//! `not_after`, or expired, and when each last verified a request), the
//! decisions and success ratio of the last five minutes ([`window`]),
//! refusals by reason, the active sessions and, with `[cardinality]`, the
//! ten metrics nearest their series bound. `/waiting` is the loading
//! page: it says whether the gateway is ready and sends the browser on to
//! `/` once it is. Neither shows a secret or a session id.
//!
//! Templates: `index.html` / `waiting.html` from `status.templates_dir` when
//! they exist there (read on each request, so an edit shows at once), the
//! built-in ones otherwise, as the original did. Placeholders: [`page`].

pub mod page;
mod suspicious;

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};

use crate::http::respond::{self, Body};
use crate::http::state::AppState;
use crate::pipeline::board::RollingWindow;
use crate::protocol::reject::Reject;
use page::{Value, Vars};

const BUILTIN_INDEX: &str = include_str!("index.html");
const BUILTIN_WAITING: &str = include_str!("waiting.html");

const REFRESH: HeaderName = HeaderName::from_static("refresh");

/// A template bigger than this is refused (and the built-in one served).
const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// The built-in pages need nothing but their own inline style.
const BUILTIN_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/// `GET /`.
pub async fn index(state: &AppState) -> Response<Body> {
    let template = template(state, "index.html", BUILTIN_INDEX).await;
    let refresh = state.settings.status.refresh_secs.to_string();
    respond_page(template, &index_vars(state), &refresh)
}

/// `GET /waiting`.
pub async fn waiting(state: &AppState) -> Response<Body> {
    let template = template(state, "waiting.html", BUILTIN_WAITING).await;
    let vars = waiting_vars(state);
    let next = match vars.get("next_url") {
        Some(Value::Text(url)) => url.as_str(),
        _ => "/waiting",
    };
    let refresh = format!("{}; url={next}", state.settings.status.refresh_secs);
    respond_page(template, &vars, &refresh)
}

/// Placeholders both pages know.
fn common_vars(state: &AppState, now: i64) -> Vars {
    let ring = state.keyring.current();
    let ready = ring.has_live_key(now);
    let mut vars = Vars::new();
    let text = |s: String| Value::Text(s);
    vars.insert("version", text(env!("CARGO_PKG_VERSION").into()));
    vars.insert(
        "uptime",
        text(page::short_duration(state.started.elapsed().as_secs())),
    );
    vars.insert("generated_at", text(page::rfc3339(now)));
    vars.insert(
        "refresh_secs",
        text(state.settings.status.refresh_secs.to_string()),
    );
    vars.insert(
        "ready",
        text(if ready { "ready" } else { "not ready" }.into()),
    );
    vars.insert("ready_class", text(if ready { "ok" } else { "bad" }.into()));
    vars.insert(
        "status_message",
        text(
            if !ready {
                "No live signing key is loaded: every request is refused (503 no_live_key)."
            } else if ring.uses_development_key() {
                "Ready, but the public DEVELOPMENT KEY is loaded: configure your own keys."
            } else {
                "Ready: answering forwardAuth decisions."
            }
            .into(),
        ),
    );
    vars
}

fn index_vars(state: &AppState) -> Vars {
    let now = state.now();
    let mut vars = common_vars(state, now);
    let text = |s: String| Value::Text(s);

    let ring = state.keyring.current();
    let mut key_rows = String::new();
    for key in ring.keys() {
        let status = match (key.is_live(now), key.not_after) {
            (false, _) => "expired",
            (true, Some(_)) => "expiring",
            (true, None) => "live",
        };
        let label = if key.development {
            format!("{status} (development key)")
        } else {
            status.to_string()
        };
        let not_after = key
            .not_after
            .map_or_else(|| "none".to_string(), |t| page::when(t, now));
        let last_used = state
            .board
            .keys
            .last_used(&key.id)
            .map_or_else(|| "not since start".to_string(), |t| page::when(t, now));
        key_rows.push_str(&page::row(
            &format!("key-{status}"),
            &[key.id.as_str(), &label, &not_after, &last_used],
        ));
    }
    if key_rows.is_empty() {
        key_rows = page::empty_row(4, "no keys loaded");
    }
    vars.insert("keys_loaded", text(ring.keys().len().to_string()));
    vars.insert("keys_live", text(ring.live(now).count().to_string()));
    vars.insert("key_rows", Value::Html(key_rows));

    let counts = state.board.window.counts(now);
    vars.insert(
        "window_minutes",
        text((RollingWindow::SPAN_SECS / 60).to_string()),
    );
    vars.insert("decisions_5m", text(counts.total().to_string()));
    vars.insert("allowed_5m", text(counts.allowed.to_string()));
    vars.insert("denied_5m", text(counts.denied_total().to_string()));
    vars.insert(
        "success_ratio_5m",
        text(counts.success_ratio().map_or_else(
            || "no decisions".to_string(),
            |r| format!("{:.1} %", r * 100.0),
        )),
    );

    let mut failure_rows = String::new();
    for reason in Reject::REASONS {
        let recent = counts
            .denied
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| *n);
        let since_start = state.metrics.auth_failed.with_label_values(&[reason]).get();
        if recent > 0 || since_start > 0 {
            failure_rows.push_str(&page::row(
                "reason",
                &[reason, &recent.to_string(), &since_start.to_string()],
            ));
        }
    }
    if failure_rows.is_empty() {
        failure_rows = page::empty_row(3, "no refusals since start");
    }
    vars.insert("failure_rows", Value::Html(failure_rows));
    vars.insert(
        "decisions_total",
        text(state.metrics.auth_total.get().to_string()),
    );

    let (mut signed, mut issued) = (0, 0);
    for (kind, count) in state.sessions.active(now) {
        match kind {
            crate::session::SessionKind::Signed => signed += count,
            crate::session::SessionKind::Issued => issued += count,
        }
    }
    vars.insert("sessions_active", text((signed + issued).to_string()));
    vars.insert("sessions_signed", text(signed.to_string()));
    vars.insert("sessions_issued", text(issued.to_string()));
    let (exports, detail) = match &state.ingest.spool {
        None => (
            "off".to_string(),
            "exports go straight to the collector".to_string(),
        ),
        Some(spool) => {
            let backlog = spool.backlog();
            (
                format!("{} waiting", backlog.exports),
                format!(
                    "{} bytes &middot; oldest {}",
                    backlog.bytes,
                    page::short_duration(backlog.oldest_age_secs)
                ),
            )
        }
    };
    vars.insert("spool_exports", text(exports));
    vars.insert("spool_detail", Value::Html(detail));
    vars.insert("series_rows", Value::Html(series_rows(state)));
    vars.insert("suspicious_rows", Value::Html(suspicious::rows(state, now)));
    vars
}

/// The series guard's ten metrics nearest their bound (names cut short
/// and escaped: they are the clients' words).
fn series_rows(state: &AppState) -> String {
    let Some(guard) = &state.ingest.guard else {
        return page::empty_row(3, "the cardinality guard is off ([cardinality])");
    };
    let rows: String = guard
        .nearest(10)
        .iter()
        .map(|u| {
            let share = format!("{:.0} %", u.series as f64 * 100.0 / u.bound.max(1) as f64);
            page::row(
                "series",
                &[&u.metric, &format!("{} / {}", u.series, u.bound), &share],
            )
        })
        .collect();
    if rows.is_empty() {
        return page::empty_row(3, "no metric series seen in this window");
    }
    rows
}

fn waiting_vars(state: &AppState) -> Vars {
    let now = state.now();
    let mut vars = common_vars(state, now);
    let ready = state.keyring.current().has_live_key(now);
    // Ready: on to the status page; not yet: look again.
    let next = if ready { "/" } else { "/waiting" };
    vars.insert("next_url", Value::Text(next.into()));
    vars
}

/// The operator's template when `templates_dir` has one, else the built-in.
async fn template(state: &AppState, name: &str, builtin: &'static str) -> Cow<'static, str> {
    let Some(dir) = &state.settings.status.templates_dir else {
        return Cow::Borrowed(builtin);
    };
    let path = dir.join(name);
    match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.len() > MAX_TEMPLATE_BYTES => {
            tracing::warn!(path = %path.display(), bytes = meta.len(), "status template too large; serving the built-in page");
            return Cow::Borrowed(builtin);
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Cow::Borrowed(builtin),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot read status template; serving the built-in page");
            return Cow::Borrowed(builtin);
        }
    }
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => Cow::Owned(text),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot read status template; serving the built-in page");
            Cow::Borrowed(builtin)
        }
    }
}

/// The page, with a `Refresh` header too: an operator's template may lack
/// the meta tag.
fn respond_page(template: Cow<'static, str>, vars: &Vars, refresh: &str) -> Response<Body> {
    let builtin = matches!(template, Cow::Borrowed(_));
    let html = page::render(&template, vars);
    let mut response = respond::with_body(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from(html),
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(refresh) {
        headers.insert(REFRESH, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if builtin {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(BUILTIN_CSP),
        );
    }
    response
}
