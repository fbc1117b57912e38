//! JSON bodies: see `jivapay_platform::http::json`, shared with the gateway.

pub use jivapay_platform::http::json::*;
