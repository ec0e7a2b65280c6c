//! A scripted stand-in collector on 127.0.0.1:0 for ingest tests that need
//! exact answers (429, partial success, delays) rather than a real one: it
//! records every request and answers with the current script.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::server::{config_with, start_server, TestServer};
use super::wait::poll_until;

/// The real server (see [`start_server`]) in front of `collector`, with the
/// rate limit out of the way; `extra` goes on in the `[collector]` table
/// (and may open others).
pub async fn start_server_before(collector: &FakeCollector, extra: &str) -> TestServer {
    start_server(&config_with(&format!(
        r#"
[rate_limit]
per_second = 10000
burst = 10000
[collector]
endpoint = "{}"
request_timeout_secs = 2
{extra}
"#,
        collector.url()
    )))
    .await
}

/// One request the collector received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the collector answers next.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: u16,
    pub content_type: &'static str,
    pub body: &'static [u8],
    pub retry_after: Option<&'static str>,
    pub delay: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            status: 200,
            content_type: "application/x-protobuf",
            body: b"",
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

#[derive(Clone)]
pub struct FakeCollector {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl FakeCollector {
    pub async fn start() -> FakeCollector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Script::default()));
        let (r, s) = (received.clone(), script.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, s) = (r.clone(), s.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (r, s) = (r.clone(), s.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            r.lock().unwrap().push(Received {
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body,
                            });
                            let script = s.lock().unwrap().clone();
                            // A slow collector is the behaviour under test
                            // (timeouts, saturation): this wait is the script.
                            tokio::time::sleep(script.delay).await;
                            let mut response = Response::builder()
                                .status(script.status)
                                .header("content-type", script.content_type);
                            if let Some(secs) = script.retry_after {
                                response = response.header("retry-after", secs);
                            }
                            Ok::<_, Infallible>(
                                response
                                    .body(Full::new(Bytes::from_static(script.body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeCollector {
            addr,
            received,
            script,
            task: Arc::new(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn answer(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Stops accepting: returns once a connection to [`FakeCollector::addr`]
    /// is refused (the aborted task drops its listener when next polled).
    pub async fn stop(&self) {
        self.task.abort();
        let addr = self.addr;
        poll_until(
            "the collector to refuse connections",
            Duration::from_secs(5),
            || async move {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(_) => Err("still accepting".to_string()),
                    Err(_) => Ok(()),
                }
            },
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    }
}

/// A collector answer (protobuf) that refused `rejected` data points with
/// `message`, as the response and as the script that answers it.
pub fn metrics_partial_success(
    rejected: i64,
    message: &str,
) -> (
    opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse,
    Script,
) {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };
    use prost::Message;
    let response = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: rejected,
            error_message: message.into(),
        }),
    };
    let script = Script {
        body: Box::leak(response.encode_to_vec().into_boxed_slice()),
        ..Default::default()
    };
    (response, script)
}
