//! Management and query API. For now: the read-only Schema Registry API, so that stock
//! Confluent Avro deserializers decode our topics, plus the operational endpoints.

pub mod registry;

use axum::Router;
use jivapay_platform::http::{ops_router, Readiness};
use jivapay_schemas::SchemaRegistry;

/// Everything the admin component serves.
pub fn router(schemas: SchemaRegistry, readiness: Readiness) -> Router {
    registry::router(schemas).merge(ops_router(readiness))
}
