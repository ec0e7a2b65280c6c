//! OTLP/gRPC, the parts that are protocol: the three Export method paths
//! (what a gRPC export is signed over: `POST` and the method path, e.g.
//! `/opentelemetry.proto.collector.metrics.v1.MetricsService/Export`), the
//! status codes telegate answers with, gRPC's length-prefixed message
//! framing (a flag byte, compressed or not, then a 4-byte big-endian length)
//! and its `grpc-timeout` values.

use std::time::Duration;

use http::HeaderName;

use super::signal::Signal;

/// The gRPC metadata telegate reads or writes, as names built once (a
/// name given as a string is parsed and checked on every use).
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// A refusal's `google.rpc.Status` (base64, unpadded).
pub const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");

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

/// The prefix of one uncompressed message of `len` bytes.
pub fn prefix(len: usize) -> [u8; PREFIX_LEN] {
    // A message over 4 GiB cannot be framed; none gets near (bodies are capped).
    let [a, b, c, d] = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [0, a, b, c, d]
}

/// One uncompressed message, framed.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_LEN + message.len());
    out.extend_from_slice(&prefix(message.len()));
    out.extend_from_slice(message);
    out
}

/// The one uncompressed message `body` frames exactly (prefix and all),
/// `None` when it is anything else.
pub fn single_message(body: &[u8]) -> Option<&[u8]> {
    let (head, message) = body.split_first_chunk::<PREFIX_LEN>()?;
    match parse_prefix(*head)? {
        (false, len) if len == message.len() => Some(message),
        _ => None,
    }
}

/// A `grpc-timeout` value (gRPC's HTTP/2 spec: `TimeoutValue TimeoutUnit`,
/// at most 8 ASCII digits, then `H`, `M`, `S`, `m`, `u` or `n`): the time
/// the client gives the call; `None` when malformed (then ignored).
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A deadline as a `grpc-timeout` value (milliseconds, rounded up, so the
/// next hop never gets less time than is left; at most 8 digits).
pub fn format_timeout(timeout: Duration) -> String {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    match u64::try_from(millis) {
        Ok(ms) if ms <= 99_999_999 => format!("{ms}m"),
        _ => format!("{}S", timeout.as_secs().min(99_999_999)),
    }
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
        assert_eq!(single_message(&framed), Some(&b"abc"[..]));
        assert_eq!(single_message(&frame(b"")), Some(&b""[..]));
        for bad in [
            &framed[..7],
            &[framed.as_slice(), b"d"].concat(),
            &[1, 0, 0, 0, 0],
            b"",
        ] {
            assert_eq!(single_message(bad), None, "{bad:?}");
        }
        assert_eq!(percent_encode("50% off\n"), "50%25 off%0A");
    }

    #[test]
    fn timeouts_parse_in_every_unit_and_malformed_ones_are_none() {
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout(b"10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout(b"300m"), Some(Duration::from_millis(300)));
        assert_eq!(
            parse_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout(b"5n"), Some(Duration::from_nanos(5)));
        for bad in [
            &b""[..],
            b"m",
            b"123456789m",
            b"10s",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
        assert_eq!(format_timeout(Duration::from_millis(300)), "300m");
        assert_eq!(format_timeout(Duration::from_micros(1)), "1m");
        let far = Duration::from_secs(200_000);
        assert_eq!(format_timeout(far), "200000S");
        assert_eq!(parse_timeout(format_timeout(far).as_bytes()), Some(far));
    }
}
