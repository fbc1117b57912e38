//! Keyed rate limits whose size is a runtime setting (`rate_limits.*`, read through
//! [`crate::settings_catalog::CachedSetting`]), enforced with
//! governor's GCRA (a well-kept implementation of the cell-rate algorithm, rather than
//! hand-written counters), and the `429 rate_limited` answer with `Retry-After`.

use super::error::ApiError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Limiter<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// `limit` requests per `period` and key, the whole budget usable at once (a burst).
pub struct KeyedRateLimit<K: Hash + Eq + Clone> {
    period: Duration,
    current: Mutex<Option<(u32, Arc<Limiter<K>>)>>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedRateLimit<K> {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            current: Mutex::new(None),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one request from `key`'s budget of `limit` per period; `Err(wait)` when it is
    /// spent. A changed `limit` starts every key afresh.
    pub fn take(&self, key: &K, limit: u32) -> Result<(), Duration> {
        let limit = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        let limiter = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            match current.as_ref() {
                Some((size, limiter)) if *size == limit.get() => limiter.clone(),
                _ => {
                    let quota = Quota::with_period(self.period / limit.get())
                        .unwrap_or_else(|| Quota::per_second(limit))
                        .allow_burst(limit);
                    let limiter = Arc::new(RateLimiter::keyed(quota));
                    *current = Some((limit.get(), limiter.clone()));
                    limiter
                }
            }
        };
        // Forget keys whose budget is full again, so the table does not grow without bound.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            limiter.retain_recent();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The answer to a request over its budget.
pub fn too_many(wait: Duration, what: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many {what}; retry after {} s", wait.as_secs().max(1)),
    )
    .into_response();
    let seconds = wait.as_secs().max(1).to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_budget_and_others_are_unaffected() {
        let limit = KeyedRateLimit::new(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limit.take(&"a", 3).is_ok());
        }
        let wait = limit.take(&"a", 3).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            limit.take(&"b", 3).is_ok(),
            "another key has its own budget"
        );
        // A bigger limit (the setting changed) starts afresh.
        assert!(limit.take(&"a", 4).is_ok());
    }

    #[test]
    fn the_answer_says_when_to_retry() {
        let response = too_many(Duration::from_millis(1500), "requests");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
