//! Harnesses for the parsers added with gRPC ingest and path rules: the
//! gRPC message unframing (with gzip) and the forwarded path's normal form.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame};

use crate::http::grpc_body::Unframe;
use crate::protocol::grpc::PREFIX_LEN;
use crate::protocol::path::{normalize, under};

/// A body of ready chunks, so the harness polls without a runtime.
struct Chunks(VecDeque<Bytes>);

impl HttpBody for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

const MAX_WIRE: usize = 64 * 1024;
const MAX_INFLATED: usize = 256 * 1024;

/// A gRPC request body. The first byte: bit 0 says the call declared
/// `grpc-encoding: gzip`, the rest is the chunk size (1-128); the remaining
/// bytes are the body as sent, in chunks of that size. Whatever the bytes:
/// no panic, at most `MAX_INFLATED` bytes out, every frame polled to the
/// end or an error; an uncompressed message that parses comes out exactly
/// as the bytes after its prefix.
pub fn grpc_unframe(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let gzip = control & 1 == 1;
    let chunk = usize::from(control >> 1).max(1);
    let chunks = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
    let mut unframe = Unframe::new(Chunks(chunks), gzip, MAX_WIRE, MAX_INFLATED);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut failed = false;
    // Every inner poll is ready, so this ends: each turn takes a chunk.
    for _ in 0..=body.len() + 2 {
        match Pin::new(&mut unframe).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(bytes) = frame.into_data() {
                    out.extend_from_slice(&bytes);
                }
                assert!(out.len() <= MAX_INFLATED, "past the inflated cap");
            }
            Poll::Ready(Some(Err(_))) => {
                failed = true;
                break;
            }
            Poll::Ready(None) => break,
            Poll::Pending => panic!("a body of ready chunks is never pending"),
        }
    }
    if failed || body.len() < PREFIX_LEN || body[0] != 0 {
        return;
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if PREFIX_LEN + len == body.len() && len <= MAX_WIRE {
        assert_eq!(
            out,
            &body[PREFIX_LEN..],
            "an uncompressed message is passed as sent"
        );
    }
}

/// A forwarded URI (the input as UTF-8, lossy). A normal form starts with
/// `/`, has no empty, `.` or `..` segment, no `\`, no `%` but in an escape
/// the decoding keeps (upper-case hex of a character that is neither
/// unreserved nor `/`, `\` or `%`: `%3E` stays, `%2e` never does), no
/// trailing `/` (but the root), is its own normal form, and is under each
/// of its own prefixes that end at a segment.
pub fn path_rules(data: &[u8]) {
    let uri = String::from_utf8_lossy(data);
    let Some(normal) = normalize(&uri) else {
        return;
    };
    assert!(normal.starts_with('/'), "{normal:?}");
    assert!(!normal.contains('\\'), "{normal:?}");
    for (at, _) in normal.match_indices('%') {
        let hex = normal.get(at + 1..at + 3).unwrap_or("");
        let kept = u8::from_str_radix(hex, 16).ok().filter(|byte| {
            hex.bytes().all(|h| !h.is_ascii_lowercase())
                && !byte.is_ascii_alphanumeric()
                && !matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\' | b'%')
        });
        assert!(kept.is_some(), "{normal:?}: escape at {at}");
    }
    if normal != "/" {
        assert!(!normal.ends_with('/'), "{normal:?}");
        for segment in normal[1..].split('/') {
            assert!(!matches!(segment, "" | "." | ".."), "{normal:?}");
        }
    }
    assert_eq!(normalize(&normal).as_deref(), Some(&*normal), "idempotent");
    for (at, _) in normal.match_indices('/').skip(1) {
        assert!(
            under(&normal, &normal[..at]),
            "{normal:?} under {:?}",
            &normal[..at]
        );
    }
    assert!(under(&normal, &normal), "{normal:?} under itself");
}
