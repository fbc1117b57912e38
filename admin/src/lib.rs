//! Management and query API: login for every role, staff permissions, master data (users,
//! merchants, stores, teams, traders, requisites, reference data, settings) with a
//! transactional outbox to compacted topics, the audit log, and the read-only Schema Registry
//! API.

pub mod audit;
pub mod auth;
pub mod commission_rules;
pub mod error;
pub mod json;
pub mod mask;
pub mod outbox;
pub mod registry;
pub mod routes;
pub mod seed;
pub mod seed_demo;
/// The catalogue lives in `platform`, so that every component reads the same defaults.
pub use jivapay_platform::settings_catalog;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use jivapay_platform::http::{ops_router, Readiness};
use jivapay_schemas::SchemaRegistry;
pub use state::AppState;

/// Largest request body the management API accepts.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Everything the admin component serves: the management API under `/api`, the Schema
/// Registry API at the root (where Confluent clients expect it), and the ops endpoints.
pub fn router(state: AppState, readiness: Readiness) -> Router {
    let schemas: SchemaRegistry = state.schemas.clone();
    Router::new()
        .nest(
            "/api",
            routes::router().layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
        )
        .with_state(state)
        .merge(registry::router(schemas))
        .merge(ops_router(readiness))
}
