//! The client protocol (`../PROTOCOL.md`, byte-compatible): what a signed
//! request is and whether its signature holds. Pure: no I/O, no clock (the
//! caller passes `now`), no shared state.
//!
//! - [`signed_request`]: parses the `X-KMS-*` headers into a typed request.
//! - [`session_id`]: what a session id may contain (one rule, UTF-8 allowed).
//! - [`signature_v2`]: the body-bound v2 headers, message and key-id verification.
//! - [`canonical`]: the canonical v1 message and its HMAC-SHA256.
//! - [`window`]: the timestamp window check, in both directions.
//! - [`keyring`]: the ring of rotating keys and which of them are live.
//! - [`verify`]: checks a v1 signature against every live key of the ring.
//! - [`signal`]: the OTLP signals a signed path names, and the media types.
//! - [`grants`]: the roles and permissions an issued session carries, and what a policy requires.
//! - [`path`]: the forwarded path in normal form, as the policies' path rules match it.
//! - [`token`]: session tokens: how one is made, presented and hashed.
//! - [`headers`]: the header names read and answered, and how values are read.
//! - [`abuse`]: key states, quota scopes and the headers the abuse controls answer with.
//! - [`client_version`]: minimum and blocked client versions (per policy and per key).
//! - [`grpc`]: OTLP/gRPC: the Export method paths (the signed path) and gRPC's message framing.
//! - [`reject`]: every reason a request is refused, with its status, sentence and `Retry-After`.

pub mod abuse;
pub mod canonical;
pub mod client_version;
pub mod grants;
pub mod grpc;
pub mod headers;
pub mod keyring;
pub mod path;
pub mod reject;
pub mod session_id;
pub mod signal;
pub mod signature_v2;
pub mod signed_request;
pub mod token;
pub mod verify;
pub mod window;
