//! The three OTLP signals and the two OTLP/HTTP encodings. A signed path
//! names a signal (on `/` the signature itself tells which), and the
//! `Content-Type` names the encoding, so both belong to the protocol.

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The collector's OTLP/HTTP path for this signal.
    pub fn collector_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Protobuf,
    Json,
}

impl Media {
    /// From a `Content-Type` value; parameters are ignored here (the header
    /// itself is forwarded unchanged).
    pub fn of(content_type: &str) -> Option<Media> {
        // What nearly every export sends, spelled as the spec does.
        if content_type == "application/x-protobuf" {
            return Some(Media::Protobuf);
        }
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Media::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Media::Json)
        } else {
            None
        }
    }
}
