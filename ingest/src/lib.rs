//! The HTTP edge for stores, customers and traders. For now it serves the operational
//! endpoints; the gateway API and the payment page build on this router.

use axum::Router;
use jivapay_platform::http::{ops_router, Readiness};

/// Everything the ingest component serves.
pub fn router(readiness: Readiness) -> Router {
    ops_router(readiness)
}
