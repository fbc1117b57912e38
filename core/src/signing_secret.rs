//! Stores' callback signing secrets: made by the management API, sealed with the data key in
//! `stores.signing_secret_encrypted`, opened by the callback sink to sign each delivery.

use crate::crypto::DataKey;
use base64::Engine as _;
use rand::RngCore;

/// A new callback signing secret: `whsec_` and 32 random bytes from the OS in standard base64,
/// as the Standard Webhooks libraries decode it (URL-safe base64 would verify with other bytes).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A signing secret as stored in `stores.signing_secret_encrypted`: base64 of nonce‖ciphertext.
pub fn seal(key: &DataKey, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.encrypt(secret))
}

/// Reads a stored signing secret back; `None` if it is damaged or sealed with another key.
pub fn open(key: &DataKey, stored: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .ok()?;
    key.decrypt(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_secrets_are_random_and_sealed() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let body = a.strip_prefix("whsec_").unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
                .len(),
            32
        );
        let key = DataKey::from_bytes([7; 32]);
        let sealed = seal(&key, &a);
        assert!(!sealed.contains(body));
        assert_eq!(open(&key, &sealed).as_deref(), Some(a.as_str()));
        assert_eq!(open(&DataKey::from_bytes([8; 32]), &sealed), None);
    }
}
