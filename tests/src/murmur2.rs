//! The Java client's partitioner, re-exported from the platform for tests.

pub use jivapay_platform::kafka::partitioner::*;
