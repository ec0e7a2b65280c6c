//! Talking to a gateway over loopback HTTP and reading what it answered:
//! the client, headers onto a request, a refusal's status and `reason`
//! (JSON, or protobuf `google.rpc.Status` on ingest routes), and one sample
//! of a Prometheus exposition.

use std::time::Duration;

use prost::Message;
use telegate::http::error::{ErrorInfo, Status};

/// The media type of OTLP protobuf (and of ingest's protobuf refusals).
pub const PROTOBUF: &str = "application/x-protobuf";

/// An HTTP client for loopback use: never goes through a proxy from the
/// environment, and never hangs a test.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("build reqwest client")
}

/// Adds every pair to `request` (appended, in order, as a client sends them).
pub fn add_headers(
    mut request: reqwest::RequestBuilder,
    headers: &[(&str, String)],
) -> reqwest::RequestBuilder {
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request
}

/// The pairs as a header map (a later pair of the same name wins).
pub fn header_map(headers: &[(&'static str, String)]) -> reqwest::header::HeaderMap {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().expect("header value"));
    }
    map
}

/// The value of one series in Prometheus text, e.g.
/// `telegate_auth_failed_total{reason="bad_signature"}`.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.split_whitespace().next()?.parse().ok()
        })
}

/// Status and the `reason` of a JSON body (a body that is not JSON fails).
pub async fn reason_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["reason"].as_str().unwrap_or_default().to_string(),
    )
}

/// Status and `reason`, from a JSON body or a protobuf `google.rpc.Status`
/// (ingest answers in the request's media type); a body with neither fails.
pub async fn reason_any(response: reqwest::Response) -> (u16, String) {
    let reply = Reply::of(response).await;
    let reason = reply
        .reason()
        .unwrap_or_else(|| panic!("no reason in the answer: {reply:?}"));
    (reply.status, reason)
}

/// A whole answer, read at once.
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn of(response: reqwest::Response) -> Reply {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("<not text>").to_owned())
        };
        let status = response.status().as_u16();
        let content_type = header("content-type");
        let retry_after = header("retry-after");
        let body = response.bytes().await.expect("read the body").to_vec();
        Reply {
            status,
            content_type,
            retry_after,
            body,
        }
    }

    /// The `reason`, from JSON or from a protobuf `google.rpc.Status`.
    pub fn reason(&self) -> Option<String> {
        if self.content_type.as_deref() == Some(PROTOBUF) {
            let status = Status::decode(&self.body[..]).ok()?;
            let detail = status.details.first()?;
            let info = ErrorInfo::decode(&detail.value[..]).ok()?;
            return Some(info.reason);
        }
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        json["reason"].as_str().map(str::to_owned)
    }

    /// A refusal with this status and reason, in either media type.
    pub fn assert_refused(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "expected {status} {reason}: {self:?}");
        assert_eq!(self.reason().as_deref(), Some(reason), "{self:?}");
    }

    /// telegate's JSON refusal (as Traefik passes it on): status, `reason`
    /// and a human `error` sentence.
    pub fn assert_refused_json(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "expected {status} {reason}: {self:?}");
        let json: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("refusal body is not JSON ({err}): {self:?}"));
        assert_eq!(json["reason"], reason, "{self:?}");
        assert!(json["error"].is_string(), "no human error text: {self:?}");
    }
}

impl std::fmt::Debug for Reply {
    /// The body as text where it is text, so a failure message can be read.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("retry_after", &self.retry_after)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}
