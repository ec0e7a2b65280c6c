//! A bare hyper 1.x server answering `200 OK` (empty body) to everything: the
//! baseline telegate is measured against (scripts/bench), built from the same
//! dependencies and the same hyper-util auto builder, on tokio's default
//! multi-thread runtime.
//!
//! It exits cleanly on SIGTERM (stops accepting and returns from `main`), as
//! telegate does, so a run under `valgrind --tool=callgrind` writes its totals
//! (scripts/bench-instructions). That costs one branch per accept, nothing
//! per request.
//!
//!   cargo run --release --example bare_responder -- 18080

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: bare_responder PORT");
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = terminate.recv() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
