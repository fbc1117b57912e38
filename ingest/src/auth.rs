//! Store authentication: the API key in `X-Api-Key` (or `Authorization: Bearer jp_…`).
//! A missing, unknown, revoked or expired key, or a key of a disabled store, is 401.

use crate::state::IngestState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jivapay_core::api_keys;
use jivapay_platform::http::error::ApiError;
use jivapay_platform::http::rate_limit::too_many;
use uuid::Uuid;

/// The authenticated store.
#[derive(Debug, Clone, Copy)]
pub struct StoreCaller {
    pub store_id: Uuid,
}

fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(key) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<IngestState> for StoreCaller {
    type Rejection = Response;

    /// Authenticates, then takes one request from the store's budget.
    async fn from_request_parts(parts: &mut Parts, state: &IngestState) -> Result<Self, Response> {
        let store = authenticate(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        state
            .limits
            .take(&state.pool, store.store_id)
            .await
            .map_err(|wait| too_many(wait, "requests from this store"))?;
        Ok(store)
    }
}

/// The store of the presented key: from the cache, else from the database.
async fn authenticate(parts: &Parts, state: &IngestState) -> Result<StoreCaller, ApiError> {
    let key = presented_key(parts)
        .ok_or_else(|| ApiError::unauthenticated("an API key is required (X-Api-Key)"))?;
    let key_hash = api_keys::hash(key);
    if let Some(store_id) = state.cache.store_of(&key_hash) {
        return Ok(StoreCaller { store_id });
    }
    let epoch = state.cache.epoch();
    let store = api_keys::authenticate(&state.pool, key).await?;
    if let Some(store_id) = store {
        state.cache.remember_store(epoch, key_hash, store_id);
    }
    store
        .map(|store_id| StoreCaller { store_id })
        .ok_or_else(|| ApiError::unauthenticated("the API key is invalid, revoked or expired"))
}
