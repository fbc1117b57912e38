//! The HTTP edge for stores, customers and traders: the gateway API (`/api/v1/...`, store API
//! keys), validated at the edge into typed orders before anything reaches Kafka.

pub mod auth;
pub mod cache;
pub mod gateway;
pub mod limits;
pub mod payment_page;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use jivapay_platform::http::{ops_router, Readiness};
pub use state::IngestState;

/// Largest gateway request body.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// Everything the ingest component serves.
pub fn router(state: IngestState, readiness: Readiness) -> Router {
    Router::new()
        .nest(
            "/api/v1",
            gateway::router().layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
        )
        .merge(payment_page::router().layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)))
        .with_state(state)
        .merge(ops_router(readiness))
}
