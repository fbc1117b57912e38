//! Simulated traffic for JivaPay, used by `jivapay demo` and by the benchmark (`jivapay-bench`):
//! stores post pay-ins at a constant arrival rate (open loop: each request leaves at its
//! scheduled time whatever happened to the earlier ones, and latency counts from that time, so
//! a slow server cannot hide its queueing); customers follow the payment's event stream and
//! confirm once a requisite shows (some never pay, some upload a receipt through the page's
//! form); traders, signed in through the real login, follow their orders' event stream and
//! confirm (some late).

pub mod api;
pub mod driver;
pub mod plan;
pub mod sse;
pub mod stats;

pub use api::Api;
pub use driver::{drive_orders, sign_in, spawn_traders, Actors, OrderOutcome};
pub use plan::{Customer, Plan, Pool, DEMO_POOLS};
pub use sse::EventStream;
pub use stats::{Latency, Percentiles, Progress};
