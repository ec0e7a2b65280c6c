//! Request bodies of the session API: read at most `sessions.max_body_bytes`
//! (413 beyond, checked on `Content-Length` first and while reading) within
//! the body deadline (408), parsed as a JSON object (400 `malformed_body`). Also the
//! percent-decoding of user ids in paths and queries.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::Body as HttpBody;
use serde::de::DeserializeOwned;

use crate::pipeline::body::BoxError;
use crate::pipeline::budget::MemoryBudget;

use super::error::ApiError;

/// The whole body within `sessions.max_body_bytes` and the body deadline
/// (the pipeline's capped reader, shared with ingest and `/auth`), held
/// against the process-wide budget while it arrives (the slow part; the
/// parsed body is small and short-lived).
pub async fn read_limited<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
    budget: &MemoryBudget,
) -> Result<Bytes, ApiError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    if crate::pipeline::body::declared_over(headers, limit) {
        return Err(ApiError::BodyTooLarge);
    }
    let mut held = budget.hold();
    Ok(crate::pipeline::body::read(body, headers, limit, deadline, &mut held).await?)
}

/// JSON into `T`; an empty body is `None`.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|_| ApiError::MalformedBody("The body is not the expected JSON"))
}

/// A JSON object into `T`; an empty body is `None`. Every session API body
/// is an object: a derived struct would also take a JSON array (serde reads
/// the fields in order), which the API does not document, so anything but
/// `{...}` is refused first.
pub fn object<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Ok(None),
        Some(b'{') => json(bytes),
        Some(_) => Err(ApiError::MalformedBody("The body must be a JSON object")),
    }
}

/// `%XX` decoded (and `+` as a space when `plus_is_space`, as in a query);
/// `None` when an escape is broken or the result is not UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;
    use http_body_util::Full;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn bodies_are_capped() {
        let small = Full::new(Bytes::from_static(b"{\"a\":1}"));
        let bytes = read_limited(
            small,
            &HeaderMap::new(),
            16,
            SECOND,
            &MemoryBudget::new(1 << 20),
        )
        .await
        .unwrap();
        assert_eq!(&bytes[..], b"{\"a\":1}");
        let big = Full::new(Bytes::from(vec![b' '; 17]));
        assert!(matches!(
            read_limited(
                big,
                &HeaderMap::new(),
                16,
                SECOND,
                &MemoryBudget::new(1 << 20)
            )
            .await,
            Err(ApiError::BodyTooLarge)
        ));
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, "1000".parse().unwrap());
        let empty = Full::new(Bytes::new());
        assert!(matches!(
            read_limited(empty, &declared, 16, SECOND, &MemoryBudget::new(1 << 20)).await,
            Err(ApiError::BodyTooLarge)
        ));
    }

    #[test]
    fn json_and_empty_bodies() {
        assert_eq!(json::<u32>(b"  \n").unwrap(), None);
        assert_eq!(json::<u32>(b"7").unwrap(), Some(7));
        assert!(matches!(json::<u32>(b"{"), Err(ApiError::MalformedBody(_))));
    }

    #[test]
    fn api_bodies_are_objects() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Two {
            a: Option<u32>,
            b: Option<u32>,
        }
        assert_eq!(object::<Two>(b" \n").unwrap(), None);
        assert_eq!(
            object::<Two>(b" {\"a\":1}").unwrap(),
            Some(Two {
                a: Some(1),
                b: None
            })
        );
        // What serde alone would take: `[1, 2]` as a = 1, b = 2.
        assert_eq!(
            json::<Two>(b"[1,2]").unwrap(),
            Some(Two {
                a: Some(1),
                b: Some(2)
            })
        );
        for refused in [&b"[1,2]"[..], b"[]", b"null", b"7", b"\"x\""] {
            assert!(
                matches!(object::<Two>(refused), Err(ApiError::MalformedBody(_))),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc", false).as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%C3%A9", false).as_deref(), Some("é"));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%FF", false), None);
    }
}
