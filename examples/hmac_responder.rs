//! The least a forwardAuth HMAC check can do: the comparison point for
//! telegate behind Traefik (scripts/bench). No rate limit, no metrics, no
//! logs, no policies, one key.
//!
//!   cargo run --release --example hmac_responder -- 18081 /path/to/secret
//!
//! Reads `X-Forwarded-Method` / `X-Forwarded-Uri` and the `X-KMS-*` headers,
//! checks the 300 s window and HMAC-SHA256 over
//! `METHOD|PATH|TIMESTAMP|SESSION_ID` (constant-time), answers 200 or 403.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

type HmacSha256 = Hmac<Sha256>;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

fn check(keyed: &HmacSha256, request: &Request<hyper::body::Incoming>) -> Option<()> {
    let h = request.headers();
    let method = header(h, "x-forwarded-method").unwrap_or(request.method().as_str());
    let uri = header(h, "x-forwarded-uri")?;
    let path = &uri[..uri.find(['?', '#']).unwrap_or(uri.len())];
    let timestamp = header(h, "x-kms-timestamp")?;
    let session = header(h, "x-kms-session-id").unwrap_or("");
    let mut signature = [0u8; 32];
    hex::decode_to_slice(header(h, "x-kms-signature")?, &mut signature).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    if (now - timestamp.parse::<i64>().ok()?).abs() > 300 {
        return None;
    }
    let mut mac = keyed.clone();
    for part in [method, "|", path, "|", timestamp, "|", session] {
        mac.update(part.as_bytes());
    }
    let tag: [u8; 32] = mac.finalize().into_bytes().into();
    bool::from(tag.ct_eq(&signature)).then_some(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hmac_responder PORT SECRET_FILE";
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect(usage);
    let secret = std::fs::read_to_string(args.next().expect(usage))?;
    let keyed = HmacSha256::new_from_slice(secret.trim().as_bytes()).expect("any key length");
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let keyed = keyed.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let status = match check(&keyed, &request) {
                    Some(()) => StatusCode::OK,
                    None => StatusCode::FORBIDDEN,
                };
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = status;
                std::future::ready(Ok::<_, Infallible>(response))
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
