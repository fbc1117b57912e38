//! The per-store request budget (`rate_limits.gateway_requests_per_second`): a store that
//! sends more gets `429 rate_limited` with `Retry-After`, and other stores do not notice.

use jivapay_platform::http::rate_limit::KeyedRateLimit;
use jivapay_platform::settings_catalog::CachedSetting;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

const SETTING: &str = "rate_limits.gateway_requests_per_second";

pub struct GatewayLimits {
    per_store: KeyedRateLimit<Uuid>,
    per_second: CachedSetting<i64>,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            per_store: KeyedRateLimit::new(Duration::from_secs(1)),
            per_second: CachedSetting::new(SETTING),
        }
    }
}

impl GatewayLimits {
    /// Takes one request from the store's budget; `Err(wait)` when it is spent.
    pub async fn take(&self, pool: &PgPool, store: Uuid) -> Result<(), Duration> {
        let per_second = self.per_second.get(pool).await.clamp(1, u32::MAX as i64) as u32;
        self.per_store.take(&store, per_second)
    }
}
