//! Operational HTTP endpoints served by every component, and the server loop.

pub mod error;
pub mod json;
mod ops;
pub mod path;
pub mod rate_limit;
mod serve;

pub use ops::{ops_router, Readiness, ReadinessCheck};
pub use serve::{bind, serve};
