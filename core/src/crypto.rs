//! Encryption at rest of requisite numbers and stores' signing secrets (AES-256-GCM, a fresh
//! random nonce per value, stored as nonce ‖ ciphertext), and keyed lookup hashes
//! (HMAC-SHA256) so a number can be found and kept unique without storing it in clear.

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

const NONCE_LEN: usize = 12;

pub struct DataKey {
    cipher: Aes256Gcm,
    mac_key: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("security.data_key is not set (JIVAPAY__SECURITY__DATA_KEY: 32 bytes, base64)")]
    NoKey,
    #[error("security.data_key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a stored value could not be decrypted (wrong data key, or damaged)")]
    Decrypt,
}

impl DataKey {
    pub fn from_settings(key: Option<&SecretString>) -> Result<Self, CryptoError> {
        let key = key.ok_or(CryptoError::NoKey)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.expose_secret())
            .map_err(|_| CryptoError::BadKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        // The lookup-hash key is derived from the data key, so one secret serves both uses
        // without the hash revealing anything about the encryption key.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("any key length");
        mac.update(b"jivapay lookup hash key");
        let mac_key = mac.finalize().into_bytes().into();
        Self {
            cipher: Aes256Gcm::new(&bytes.into()),
            mac_key,
        }
    }

    pub fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, plaintext.as_bytes())
                .expect("AES-GCM encrypts any length"),
        );
        out
    }

    pub fn decrypt(&self, stored: &[u8]) -> Result<String, CryptoError> {
        if stored.len() <= NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = stored.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }

    /// A keyed hash for equality lookups (the same input always gives the same 32 bytes).
    pub fn lookup_hash(&self, value: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key).expect("any key length");
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_fresh_nonces() {
        let key = DataKey::from_bytes([7; 32]);
        let a = key.encrypt("4276550012345678");
        let b = key.encrypt("4276550012345678");
        assert_ne!(a, b);
        assert_eq!(key.decrypt(&a).unwrap(), "4276550012345678");
        assert!(DataKey::from_bytes([8; 32]).decrypt(&a).is_err());
        let mut damaged = a.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(key.decrypt(&damaged).is_err());
    }

    #[test]
    fn lookup_hashes_are_stable_and_keyed() {
        let key = DataKey::from_bytes([7; 32]);
        assert_eq!(key.lookup_hash("x"), key.lookup_hash("x"));
        assert_ne!(key.lookup_hash("x"), key.lookup_hash("y"));
        assert_ne!(
            key.lookup_hash("x"),
            DataKey::from_bytes([8; 32]).lookup_hash("x")
        );
    }
}
