//! What the gateway asks PostgreSQL on every request — which store an API key belongs to, and
//! whether a store may take a pay-in in a pool — kept in memory for a short time, so a pay-in
//! costs one database round trip (its idempotency row) instead of three.
//!
//! Correctness does not rest on the time limit: a trigger (migration 15) notifies channel
//! `jivapay_gateway_cache` when a key, store, merchant or reference entry changes, and
//! [`listen`] drops everything at once. While the listener is not connected nothing is served
//! from the cache. An answer read from the database while a change commits is not kept (the
//! epoch moved), so a revoked key stops working within the notification's delay (milliseconds).

use jivapay_platform::health::LoopHealth;
use jivapay_platform::pg_notifications::{self, Heard};
use jivapay_platform::settings_catalog::CachedSetting;
use moka::sync::Cache;
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The channel migration 15's triggers notify.
pub const CHANNEL: &str = "jivapay_gateway_cache";
/// Upper bound on an entry's life, should a notification ever be missed.
const TIME_TO_LIVE: Duration = Duration::from_secs(30);
const CAPACITY: u64 = 100_000;

/// What a pay-in needs to know of its store and pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolCheck {
    pub pay_in_enabled: bool,
    pub currency_known: bool,
    pub pool_active: bool,
    pub min_amount: Option<Decimal>,
    pub max_amount: Option<Decimal>,
}

/// A moment of the cache: an answer read after it may be kept only if nothing changed since.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(u64);

pub struct GatewayCache {
    /// SHA-256 of a presented key → its store.
    keys: Cache<[u8; 32], Uuid>,
    /// (store, currency, method) → the pool check.
    pools: Cache<(Uuid, String, String), PoolCheck>,
    epoch: AtomicU64,
    live: AtomicBool,
    /// `callbacks.allow_private_addresses`, for the callback URL check (re-read every few
    /// seconds; not covered by the notification).
    allow_private: CachedSetting<bool>,
}

fn bounded<K, V>() -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(TIME_TO_LIVE)
        .build()
}

impl Default for GatewayCache {
    fn default() -> Self {
        Self {
            keys: bounded(),
            pools: bounded(),
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(false),
            allow_private: CachedSetting::new("callbacks.allow_private_addresses"),
        }
    }
}

impl GatewayCache {
    /// Whether callback URLs may point at private addresses (the development allowance).
    pub async fn allow_private_callbacks(&self, pool: &PgPool) -> bool {
        self.allow_private.get(pool).await
    }

    pub fn epoch(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::SeqCst))
    }

    fn serving(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    fn unchanged_since(&self, epoch: Epoch) -> bool {
        self.serving() && self.epoch.load(Ordering::SeqCst) == epoch.0
    }

    pub fn store_of(&self, key_hash: &[u8; 32]) -> Option<Uuid> {
        self.serving().then(|| self.keys.get(key_hash)).flatten()
    }

    /// Keeps a key's store, read from the database after `epoch`.
    pub fn remember_store(&self, epoch: Epoch, key_hash: [u8; 32], store: Uuid) {
        if self.unchanged_since(epoch) {
            self.keys.insert(key_hash, store);
        }
    }

    pub fn pool_check(&self, store: Uuid, currency: &str, method: &str) -> Option<PoolCheck> {
        let key = (store, currency.to_owned(), method.to_owned());
        self.serving().then(|| self.pools.get(&key)).flatten()
    }

    pub fn remember_pool_check(
        &self,
        epoch: Epoch,
        store: Uuid,
        currency: &str,
        method: &str,
        check: PoolCheck,
    ) {
        if self.unchanged_since(epoch) {
            self.pools
                .insert((store, currency.to_owned(), method.to_owned()), check);
        }
    }

    /// Forgets everything (a change was committed, or the listener lost its connection).
    fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.keys.invalidate_all();
        self.pools.invalidate_all();
    }

    fn set_serving(&self, serving: bool) {
        self.invalidate();
        self.live.store(serving, Ordering::SeqCst);
    }
}

/// Listens for changes until `stop`; the cache serves only while this is connected.
pub async fn listen(
    pool: PgPool,
    cache: Arc<GatewayCache>,
    health: LoopHealth,
    stop: CancellationToken,
) {
    pg_notifications::listen(pool, CHANNEL, health, stop, |heard| match heard {
        Heard::Connected => cache.set_serving(true),
        Heard::Notified(_) => cache.invalidate(),
        Heard::Lost => cache.set_serving(false),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_served_or_kept_while_the_listener_is_away() {
        let cache = GatewayCache::default();
        let store = Uuid::from_u128(1);
        cache.remember_store(cache.epoch(), [1; 32], store);
        assert_eq!(cache.store_of(&[1; 32]), None);
        cache.set_serving(true);
        cache.remember_store(cache.epoch(), [1; 32], store);
        assert_eq!(cache.store_of(&[1; 32]), Some(store));
        cache.set_serving(false);
        assert_eq!(cache.store_of(&[1; 32]), None);
    }

    #[test]
    fn an_answer_read_across_a_change_is_not_kept() {
        let cache = GatewayCache::default();
        cache.set_serving(true);
        let before = cache.epoch();
        cache.invalidate(); // a change committed while the answer was being read
        cache.remember_store(before, [2; 32], Uuid::from_u128(2));
        assert_eq!(cache.store_of(&[2; 32]), None);
        let check = PoolCheck {
            pay_in_enabled: true,
            currency_known: true,
            pool_active: true,
            min_amount: None,
            max_amount: None,
        };
        cache.remember_pool_check(before, Uuid::from_u128(2), "RUB", "sbp", check.clone());
        assert_eq!(cache.pool_check(Uuid::from_u128(2), "RUB", "sbp"), None);
        let now = cache.epoch();
        cache.remember_pool_check(now, Uuid::from_u128(2), "RUB", "sbp", check.clone());
        assert_eq!(
            cache.pool_check(Uuid::from_u128(2), "RUB", "sbp"),
            Some(check)
        );
    }
}
