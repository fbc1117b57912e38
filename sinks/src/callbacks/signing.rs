//! Signatures by the Standard Webhooks specification (<https://www.standardwebhooks.com>):
//! `webhook-id` (the event id, the same on every attempt), `webhook-timestamp` (Unix seconds,
//! fresh on every attempt) and `webhook-signature`: `v1,<base64 of HMAC-SHA256(key,
//! "id.timestamp.body")>`, where the key is the bytes of the base64 after the secret's `whsec_`
//! prefix. During a rotation both the current and the previous secret sign, and the header
//! carries both signatures separated by a space, so a merchant verifies with either.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// The key bytes of a `whsec_…` secret (standard base64; the URL-safe alphabet of secrets
/// made before issue 5 is accepted too).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())
        .filter(|key| !key.is_empty())
}

/// One `v1,<base64>` signature of `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per usable secret, space-separated.
pub fn signature_header(secrets: &[String], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| secret_key(s))
        .map(|key| sign(&key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies a header as a receiver would (tests and documentation examples).
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(key) = secret_key(secret) else {
        return false;
    };
    let expected = sign(&key, id, timestamp, body);
    header.split(' ').any(|candidate| candidate == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and reference libraries.
    #[test]
    fn matches_the_reference_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        let key = secret_key(secret).unwrap();
        assert_eq!(
            sign(&key, id, timestamp, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn both_secrets_sign_during_a_rotation() {
        let (a, b) = (
            format!("{SECRET_PREFIX}{}", STANDARD.encode([1u8; 32])),
            format!("{SECRET_PREFIX}{}", STANDARD.encode([2u8; 32])),
        );
        let header = signature_header(&[a.clone(), b.clone()], "id", 5, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&a, "id", 5, b"{}", &header));
        assert!(verify(&b, "id", 5, b"{}", &header));
        assert!(!verify(&a, "id", 6, b"{}", &header));
        assert!(!verify(&a, "id", 5, b"{ }", &header));
    }
}
