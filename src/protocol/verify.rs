//! Signature verification (pure): the v1 message's HMAC-SHA256 under every
//! live key the policy allows, compared in constant time.
//!
//! The tag length is fixed by parsing (a signature that is not 32 bytes never
//! gets here), so the comparison cannot stop early on a short input.

use subtle::ConstantTimeEq;

use crate::protocol::keyring::{Key, KeyId, Keyring};
use crate::protocol::reject::Reject;
use crate::protocol::signed_request::SignedRequest;

/// Returns the key that made the signature. `now` decides which keys are live;
/// `allowed` narrows the ring to a policy's key ids.
pub fn verify<'k>(
    request: &SignedRequest<'_>,
    ring: &'k Keyring,
    allowed: Option<&[KeyId]>,
    now: i64,
) -> Result<&'k Key, Reject> {
    let message = request.message().to_bytes();
    ring.candidates(allowed, now)?
        .find(|key| bool::from(key.tag(&message).ct_eq(&request.signature)))
        .ok_or(Reject::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::canonical::{sign_v1, MessageV1};
    use crate::protocol::signed_request::parse_signature;
    use crate::secret::Secret;

    fn ring() -> Keyring {
        let key = |id: &str, text: &str, not_after| {
            Key::new(KeyId::new(id), &Secret::from_text(text).unwrap(), not_after)
        };
        Keyring::new(vec![
            key("old", "old-secret", Some(1_000)),
            key("new", "new-secret", None),
        ])
    }

    fn request(signature_hex: &str) -> SignedRequest<'static> {
        SignedRequest {
            method: "POST",
            path: "/v1/metrics",
            timestamp: 900,
            session_id: "s",
            client_version: None,
            build: None,
            signature: parse_signature(signature_hex).unwrap(),
        }
    }

    fn sign(secret: &str) -> String {
        let message = MessageV1 {
            method: "POST",
            path: "/v1/metrics",
            timestamp: 900,
            session_id: "s",
        };
        sign_v1(&Secret::from_text(secret).unwrap(), &message)
    }

    #[test]
    fn every_live_key_verifies_and_names_itself() {
        let ring = ring();
        assert_eq!(
            verify(&request(&sign("old-secret")), &ring, None, 950)
                .unwrap()
                .id
                .as_str(),
            "old"
        );
        assert_eq!(
            verify(&request(&sign("new-secret")), &ring, None, 950)
                .unwrap()
                .id
                .as_str(),
            "new"
        );
    }

    #[test]
    fn an_expired_key_no_longer_verifies() {
        let ring = ring();
        assert_eq!(
            verify(&request(&sign("old-secret")), &ring, None, 1_001).unwrap_err(),
            Reject::BadSignature
        );
    }

    #[test]
    fn a_wrong_key_or_changed_field_is_a_bad_signature() {
        let ring = ring();
        assert_eq!(
            verify(&request(&sign("other")), &ring, None, 950).unwrap_err(),
            Reject::BadSignature
        );
        let mut tampered = request(&sign("new-secret"));
        tampered.path = "/v1/traces";
        assert_eq!(
            verify(&tampered, &ring, None, 950).unwrap_err(),
            Reject::BadSignature
        );
    }

    #[test]
    fn a_policy_narrows_the_ring() {
        let ring = ring();
        let only_new = [KeyId::new("new")];
        assert_eq!(
            verify(&request(&sign("old-secret")), &ring, Some(&only_new), 950).unwrap_err(),
            Reject::BadSignature
        );
        assert!(verify(&request(&sign("new-secret")), &ring, Some(&only_new), 950).is_ok());
    }

    #[test]
    fn golden_signatures_verify_in_either_case_and_name_their_key() {
        use crate::protocol::canonical::golden;
        for v in golden::vectors() {
            let secret = Secret::from_text(v.secret).unwrap();
            let ring = Keyring::new(vec![
                Key::new(
                    KeyId::new("decoy"),
                    &Secret::from_text("decoy").unwrap(),
                    None,
                ),
                Key::new(KeyId::new("golden"), &secret, None),
            ]);
            for signature in [v.signature.to_string(), v.signature.to_uppercase()] {
                let request = SignedRequest {
                    method: v.method,
                    path: v.path,
                    timestamp: v.timestamp,
                    session_id: v.session_id,
                    client_version: None,
                    build: None,
                    signature: parse_signature(&signature).unwrap(),
                };
                let key = verify(&request, &ring, None, v.timestamp).unwrap();
                assert_eq!(key.id.as_str(), "golden", "{}", v.message);
            }
        }
    }

    #[test]
    fn an_empty_ring_is_not_the_clients_fault() {
        assert_eq!(
            verify(&request(&sign("x")), &Keyring::default(), None, 950).unwrap_err(),
            Reject::NoLiveKey
        );
    }
}
