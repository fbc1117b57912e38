//! API errors: see `jivapay_platform::http::error`, shared with the gateway.

pub use jivapay_platform::http::error::*;
