//! The runtime settings the callback sink follows, read from `configuration_settings` (the sink
//! has PostgreSQL at hand; the settings topic carries the same values) and cached briefly, so a
//! change made in the management API applies within seconds without a restart.

use jivapay_core::callback_url;
use jivapay_platform::settings_catalog as catalogue;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a read of the settings is used before it is read again.
const REFRESH: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `callbacks.retry_schedule_secs`
    pub schedule: Vec<u64>,
    /// `callbacks.timeout_secs`
    pub timeout: Duration,
    /// `callbacks.disable_after_failing_secs`
    pub disable_after: Duration,
    /// `callbacks.allow_private_addresses`
    pub allow_private: bool,
}

impl Default for Policy {
    /// The catalogue's defaults (`jivapay_platform::settings_catalog`).
    fn default() -> Self {
        let secs = |key| Duration::from_secs(catalogue::default_integer(key).max(0) as u64);
        Self {
            schedule: catalogue::default_seconds_list("callbacks.retry_schedule_secs"),
            timeout: secs("callbacks.timeout_secs"),
            disable_after: secs("callbacks.disable_after_failing_secs"),
            allow_private: catalogue::default_boolean(callback_url::ALLOW_PRIVATE_SETTING),
        }
    }
}

impl Policy {
    /// How long a claimed delivery stays leased to its sender: after that a crashed sender's
    /// delivery is due again.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }

    fn apply(&mut self, key: &str, value: &serde_json::Value) {
        match key {
            "callbacks.retry_schedule_secs" => {
                if let Some(list) = value.as_array() {
                    let parsed: Option<Vec<u64>> = list.iter().map(|v| v.as_u64()).collect();
                    if let Some(parsed) = parsed.filter(|p| !p.is_empty()) {
                        self.schedule = parsed;
                    }
                }
            }
            "callbacks.timeout_secs" => {
                if let Some(secs) = value.as_u64().filter(|s| *s > 0) {
                    self.timeout = Duration::from_secs(secs);
                }
            }
            "callbacks.disable_after_failing_secs" => {
                if let Some(secs) = value.as_u64() {
                    self.disable_after = Duration::from_secs(secs);
                }
            }
            callback_url::ALLOW_PRIVATE_SETTING => {
                if let Some(b) = value.as_bool() {
                    self.allow_private = b;
                }
            }
            _ => {}
        }
    }

    pub async fn load(pool: &PgPool) -> sqlx::Result<Self> {
        let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT key, value FROM configuration_settings WHERE key LIKE 'callbacks.%'",
        )
        .fetch_all(pool)
        .await?;
        let mut policy = Policy::default();
        for (key, value) in rows {
            policy.apply(&key, &value);
        }
        Ok(policy)
    }
}

/// The policy, re-read at most every [`REFRESH`].
#[derive(Clone)]
pub struct PolicyCache {
    pool: PgPool,
    cached: Arc<Mutex<Option<(Instant, Policy)>>>,
}

impl PolicyCache {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cached: Arc::default(),
        }
    }

    pub async fn get(&self) -> sqlx::Result<Policy> {
        let mut cached = self.cached.lock().await;
        if let Some((at, policy)) = &*cached {
            if at.elapsed() < REFRESH {
                return Ok(policy.clone());
            }
        }
        let policy = Policy::load(&self.pool).await?;
        *cached = Some((Instant::now(), policy.clone()));
        Ok(policy)
    }
}
