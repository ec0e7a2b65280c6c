//! The bodies of the OTLP/gRPC listener. [`Unframe`] turns a unary call's
//! request stream into the one protobuf message it carries, as the body
//! stage of admission reads it: the 5-byte prefix stripped, a compressed
//! message (`grpc-encoding: gzip`) inflated as it arrives, its wire length
//! capped at `ingest.max_body_bytes` and its inflated size at
//! `ingest.max_decompressed_bytes` (both refused as `body_too_large`,
//! through [`OverLimit`]); the body stage's own cap, deadline and body
//! budget apply to what it yields. [`Reply`] is a response body: one
//! message, then the `grpc-status` trailers.

use std::io::Write;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use flate2::write::GzDecoder;
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::pipeline::body::{BoxError, OverLimit};
use crate::protocol::grpc::{parse_prefix, PREFIX_LEN};

/// Compressed bytes inflated per step, so one step's output stays small
/// (gzip inflates at most ~1032x) and the cap is checked between steps.
const INFLATE_STEP: usize = 1024;

/// A broken gRPC stream: read as `unreadable_body`.
#[derive(Debug)]
struct Malformed(&'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Malformed {}

/// See the module doc.
pub struct Unframe<B> {
    inner: B,
    /// The prefix bytes seen so far.
    prefix: BytesMut,
    /// Message bytes still to come, once the prefix is read.
    remaining: Option<usize>,
    inflater: Option<GzDecoder<Vec<u8>>>,
    gzip: bool,
    max_wire: usize,
    max_inflated: usize,
    inflated: usize,
    done: bool,
}

impl<B> Unframe<B> {
    /// `gzip`: the call's `grpc-encoding` is gzip (a compressed message is
    /// refused without it).
    pub fn new(inner: B, gzip: bool, max_wire: usize, max_inflated: usize) -> Unframe<B> {
        Unframe {
            inner,
            prefix: BytesMut::with_capacity(PREFIX_LEN),
            remaining: None,
            inflater: None,
            gzip,
            max_wire,
            max_inflated,
            inflated: 0,
            done: false,
        }
    }

    /// Takes what `data` holds of the message; `Ok(bytes)` to yield. An
    /// uncompressed message's part is yielded as the slice of `data` it is
    /// (no copy): one frame holds at most one part, since after the
    /// message's last byte any more data is refused.
    fn take(&mut self, mut data: Bytes) -> Result<Bytes, BoxError> {
        let mut out = BytesMut::new();
        let mut plain = None;
        while data.has_remaining() {
            let Some(remaining) = self.remaining else {
                let need = PREFIX_LEN - self.prefix.len();
                let n = need.min(data.len());
                self.prefix.extend_from_slice(&data.split_to(n));
                if self.prefix.len() == PREFIX_LEN {
                    self.start()?;
                }
                continue;
            };
            if remaining == 0 {
                return Err(Box::new(Malformed("more than one message in a unary call")));
            }
            let n = remaining.min(data.len());
            let part = data.split_to(n);
            self.remaining = Some(remaining - n);
            match &mut self.inflater {
                None => plain = Some(part),
                Some(_) => self.inflate(&part, &mut out)?,
            }
            if self.remaining == Some(0) {
                self.finish(&mut out)?;
            }
        }
        Ok(plain.unwrap_or_else(|| out.freeze()))
    }

    fn start(&mut self) -> Result<(), BoxError> {
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&self.prefix);
        let (compressed, len) = parse_prefix(prefix).ok_or(Malformed("bad gRPC message flag"))?;
        if len > self.max_wire {
            return Err(Box::new(OverLimit {
                limit: self.max_wire,
            }));
        }
        if compressed {
            if !self.gzip {
                return Err(Box::new(Malformed(
                    "compressed message without grpc-encoding",
                )));
            }
            self.inflater = Some(GzDecoder::new(Vec::new()));
        }
        self.remaining = Some(len);
        Ok(())
    }

    fn inflate(&mut self, part: &[u8], out: &mut BytesMut) -> Result<(), BoxError> {
        for step in part.chunks(INFLATE_STEP) {
            let Some(inflater) = self.inflater.as_mut() else {
                return Ok(());
            };
            inflater
                .write_all(step)
                .map_err(|_| Malformed("bad gzip in a gRPC message"))?;
            self.drain(out)?;
        }
        Ok(())
    }

    /// Moves the inflated bytes to `out`, within the cap.
    fn drain(&mut self, out: &mut BytesMut) -> Result<(), BoxError> {
        if let Some(inflater) = self.inflater.as_mut() {
            let produced = std::mem::take(inflater.get_mut());
            self.inflated = self.inflated.saturating_add(produced.len());
            if self.inflated > self.max_inflated {
                return Err(Box::new(OverLimit {
                    limit: self.max_inflated,
                }));
            }
            out.extend_from_slice(&produced);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), BoxError> {
        if let Some(inflater) = self.inflater.as_mut() {
            inflater
                .try_finish()
                .map_err(|_| Malformed("truncated gzip in a gRPC message"))?;
            self.drain(out)?;
            self.inflater = None;
        }
        Ok(())
    }
}

impl<B> HttpBody for Unframe<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    this.done = true;
                    // A cut message is not a message; no message is the
                    // empty body (refused as `empty_body`).
                    let partial = !this.prefix.is_empty() && this.remaining != Some(0);
                    if partial {
                        return Poll::Ready(Some(Err(Box::new(Malformed(
                            "gRPC message cut short",
                        )))));
                    }
                    return Poll::Ready(None);
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue; // the client's trailers carry nothing we read
                    };
                    let bytes = data.copy_to_bytes(data.remaining());
                    match this.take(bytes) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(err) => {
                            this.done = true;
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                }
            }
        }
    }
}

/// A gRPC response body: the message (if any), then the trailers.
pub struct Reply {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn new(data: Option<Bytes>, trailers: Option<HeaderMap>) -> Reply {
        Reply { data, trailers }
    }
}

impl HttpBody for Reply {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.data {
            Some(data) => SizeHint::with_exact(data.len() as u64),
            None => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    async fn unframe(wire: Vec<u8>, gzip: bool, max: usize) -> Result<Bytes, String> {
        let body = Unframe::new(Full::new(Bytes::from(wire)), gzip, max, max * 4);
        match body.collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(err) => Err(match err.downcast::<OverLimit>() {
                Ok(over) => format!("over {}", over.limit),
                Err(other) => other.to_string(),
            }),
        }
    }

    #[tokio::test]
    async fn a_message_is_unframed_and_a_gzipped_one_inflated() {
        let plain = crate::protocol::grpc::frame(b"hello");
        assert_eq!(unframe(plain, false, 100).await.unwrap(), "hello");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[7u8; 300]).unwrap();
        let packed = gz.finish().unwrap();
        let mut wire = vec![1];
        wire.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        wire.extend_from_slice(&packed);
        assert_eq!(
            unframe(wire.clone(), true, 100).await.unwrap(),
            vec![7u8; 300]
        );
        // Compressed without grpc-encoding, inflated past the cap.
        assert!(unframe(wire.clone(), false, 100).await.is_err());
        assert_eq!(unframe(wire, true, 50).await.unwrap_err(), "over 200");
    }

    #[tokio::test]
    async fn long_cut_and_doubled_messages_are_refused() {
        assert_eq!(
            unframe(crate::protocol::grpc::frame(&[0; 101]), false, 100)
                .await
                .unwrap_err(),
            "over 100"
        );
        let mut cut = crate::protocol::grpc::frame(b"hello");
        cut.pop();
        assert!(unframe(cut, false, 100).await.is_err());
        let mut two = crate::protocol::grpc::frame(b"a");
        two.extend(crate::protocol::grpc::frame(b"b"));
        assert!(unframe(two, false, 100).await.is_err());
        assert_eq!(unframe(Vec::new(), false, 100).await.unwrap(), "");
    }
}
