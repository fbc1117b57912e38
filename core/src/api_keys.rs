//! Gateway API keys of a store: their format, and how the gateway authenticates a presented
//! key. The management API issues, lists, revokes and rotates them (`admin`'s store routes);
//! the gateway checks them here, in PostgreSQL, without going through it.
//!
//! A key is `jp_` + an 8-character prefix (`[a-z0-9]`) + `_` + 32 random characters
//! (`[A-Za-z0-9]`, about 190 bits), all from the OS random source. It is shown once, when it is
//! issued. The database keeps the prefix (unique, so people can tell keys apart and a key can be
//! shown masked as `jp_ab12cd34_…`) and SHA-256 of the whole key. A fast hash is right here:
//! slow password hashes exist to resist guessing low-entropy secrets, and a 190-bit random key
//! cannot be guessed; a plain hash also lets the gateway find the key in one index probe.

use rand::distributions::{Alphanumeric, DistString, Uniform};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "jp_";
/// Characters of the visible prefix.
pub const PREFIX_LEN: usize = 8;
/// Random characters after the prefix.
pub const SECRET_LEN: usize = 32;
/// Length of a whole key: `jp_` + prefix + `_` + secret.
pub const KEY_LEN: usize = KEY_PREFIX.len() + PREFIX_LEN + 1 + SECRET_LEN;
/// `last_used_at` is written at most this often per key, so the gateway does not write a row
/// on every request.
const LAST_USED_RESOLUTION_SECS: f64 = 60.0;

/// A fresh key: (prefix, whole key).
pub fn generate() -> (String, String) {
    let mut rng = rand::rngs::OsRng;
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let pick = Uniform::from(0..LOWER.len());
    let prefix: String = (0..PREFIX_LEN)
        .map(|_| char::from(LOWER[rng.sample(pick)]))
        .collect();
    let secret = Alphanumeric.sample_string(&mut rng, SECRET_LEN);
    let key = format!("{KEY_PREFIX}{prefix}_{secret}");
    (prefix, key)
}

/// SHA-256 of the whole key, as stored in `store_api_keys.key_hash`.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// How a key is shown after it was issued.
pub fn masked(prefix: &str) -> String {
    format!("{KEY_PREFIX}{prefix}_…")
}

/// The store a presented key belongs to, if the key is in use (not revoked, not expired) and
/// its store and merchant are enabled. Marks the key used (at most once a minute, and never
/// waiting for a row an admin transaction holds: the gateway must not queue behind it).
pub async fn authenticate(pool: &PgPool, presented: &str) -> Result<Option<Uuid>, sqlx::Error> {
    if presented.len() != KEY_LEN || !presented.starts_with(KEY_PREFIX) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "WITH hit AS (
             SELECT k.id, k.store_id, k.last_used_at
             FROM store_api_keys k
             JOIN stores s ON s.id = k.store_id
             JOIN merchants m ON m.id = s.merchant_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL
               AND (k.expires_at IS NULL OR k.expires_at > now())
               AND s.is_enabled AND m.is_enabled
         ), touched AS (
             UPDATE store_api_keys SET last_used_at = now()
             WHERE id IN (SELECT k.id FROM store_api_keys k JOIN hit ON hit.id = k.id
                          WHERE hit.last_used_at IS NULL
                             OR hit.last_used_at < now() - make_interval(secs => $2)
                          FOR UPDATE OF k SKIP LOCKED)
         )
         SELECT store_id FROM hit",
    )
    .bind(&hash(presented)[..])
    .bind(LAST_USED_RESOLUTION_SECS)
    .fetch_optional(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let (prefix, key) = generate();
        assert_eq!(key.len(), KEY_LEN);
        assert_eq!(prefix.len(), PREFIX_LEN);
        assert!(prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        let rest = key
            .strip_prefix(&format!("jp_{prefix}_"))
            .expect("jp_<prefix>_");
        assert_eq!(rest.len(), SECRET_LEN);
        assert!(rest.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(masked(&prefix), format!("jp_{prefix}_…"));
        let (other_prefix, other) = generate();
        assert_ne!((prefix, key), (other_prefix, other));
    }

    #[test]
    fn the_hash_is_sha256_of_the_whole_key() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hash("abc")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (_, key) = generate();
        assert_eq!(hash(&key), hash(&key.clone()));
        assert_ne!(hash(&key), hash(&key[..key.len() - 1]));
    }
}
