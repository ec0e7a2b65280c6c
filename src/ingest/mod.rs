//! Direct OTLP/HTTP ingest.
pub mod body;
pub mod otlp;
