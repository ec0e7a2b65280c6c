//! OTLP/gRPC, the parts that are protocol: the three Export method paths
//! (what a gRPC export is signed over: `POST` and the method path, e.g.
//! `/opentelemetry.proto.collector.metrics.v1.MetricsService/Export`), the
//! status codes telegate answers with, and gRPC's length-prefixed message
//! framing (a flag byte, compressed or not, then a 4-byte big-endian length).

use super::signal::Signal;

/// The trace service's Export method path.
pub const TRACES_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The metrics service's Export method path.
pub const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
/// The logs service's Export method path.
pub const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The prefix of every gRPC message: the compressed flag and the length.
pub const PREFIX_LEN: usize = 5;

/// `grpc-status` codes telegate sends itself (the rest come from the
/// HTTP status of a refusal, see `http::error`).
pub const OK: u32 = 0;
pub const UNIMPLEMENTED: u32 = 12;
pub const INTERNAL: u32 = 13;

/// The signal an Export method path names.
pub fn signal_of(path: &str) -> Option<Signal> {
    match path {
        TRACES_EXPORT => Some(Signal::Traces),
        METRICS_EXPORT => Some(Signal::Metrics),
        LOGS_EXPORT => Some(Signal::Logs),
        _ => None,
    }
}

/// The Export method path of a signal.
pub fn export_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => TRACES_EXPORT,
        Signal::Metrics => METRICS_EXPORT,
        Signal::Logs => LOGS_EXPORT,
    }
}

/// A message's prefix: whether it is compressed (with the call's
/// `grpc-encoding`) and how many bytes follow; `None` for a flag other
/// than 0 or 1.
pub fn parse_prefix(prefix: [u8; PREFIX_LEN]) -> Option<(bool, usize)> {
    let compressed = match prefix[0] {
        0 => false,
        1 => true,
        _ => return None,
    };
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    Some((compressed, len as usize))
}

/// One uncompressed message, framed.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_LEN + message.len());
    out.push(0);
    // A message over 4 GiB cannot be framed; none gets near (bodies are capped).
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    out
}

/// `grpc-message`'s percent-encoding (gRPC's HTTP/2 spec): printable ASCII
/// but `%` as is, everything else `%XX`.
pub fn percent_encode(text: &str) -> String {
    super::headers::percent_encode(text, |b| (0x20..=0x7e).contains(&b) && b != b'%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_name_their_signals() {
        for signal in Signal::ALL {
            assert_eq!(signal_of(export_path(signal)), Some(signal));
        }
        assert_eq!(signal_of("/v1/metrics"), None);
    }

    #[test]
    fn frames_round_trip_and_bad_flags_are_refused() {
        let framed = frame(b"abc");
        assert_eq!(framed, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let prefix: [u8; 5] = framed[..5].try_into().unwrap();
        assert_eq!(parse_prefix(prefix), Some((false, 3)));
        assert_eq!(parse_prefix([1, 0, 0, 1, 0]), Some((true, 256)));
        assert_eq!(parse_prefix([2, 0, 0, 0, 0]), None);
        assert_eq!(percent_encode("50% off\n"), "50%25 off%0A");
    }
}
