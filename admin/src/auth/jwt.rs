//! Login tokens: HS256 JWTs with subject, role, expiry, issuer, audience and the user's token
//! version (bumped when a user is blocked or changes password, which revokes older tokens).
//! Verification pins the algorithm (so `alg: none` and other algorithms are refused), requires
//! `exp`, `iss`, `aud` and `sub`, and tolerates a small clock skew.

use crate::auth::Role;
use jivapay_platform::settings::AuthSettings;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// The user's `token_version` when the token was issued.
    pub ver: i32,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("auth.jwt_secret is not set (JIVAPAY__AUTH__JWT_SECRET)")]
    NoSecret,
    #[error("token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
}

impl JwtKeys {
    pub fn new(settings: &AuthSettings) -> Result<Self, JwtError> {
        let secret = settings
            .jwt_secret
            .as_ref()
            .ok_or(JwtError::NoSecret)?
            .expose_secret();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = settings.jwt_leeway_secs;
        validation.validate_exp = true;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ttl_secs: settings.jwt_ttl_secs as i64,
        })
    }

    /// A token for `user`, valid from `now` (Unix seconds) for the configured lifetime.
    pub fn issue(
        &self,
        user: Uuid,
        role: Role,
        token_version: i32,
        now: i64,
    ) -> Result<(String, i64), JwtError> {
        let claims = Claims {
            sub: user,
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_secs,
            ver: token_version,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims.exp))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        Ok(decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}
