//! Merchant callbacks (issue 5): every merchant-visible order event is delivered to the order's
//! callback URL at least once, signed by Standard Webhooks, retried on a schedule, in order per
//! order, logged and replayable. See `docs/callbacks.md`.
//!
//! Two loops share PostgreSQL: the **intake** (the generic sink loop over `orders.events`,
//! effectively-once by offsets in the same transaction) turns events into delivery rows; the
//! **sender** claims due rows and POSTs them. All retry state is in PostgreSQL, so retries
//! survive restarts; a delivery claimed by a sender that dies is due again when its lease ends.

pub mod intake;
pub mod policy;
pub mod resolver;
pub mod schedule;
pub mod sender;
pub mod signing;

use chrono::{DateTime, Utc};
use jivapay_core::crypto::DataKey;
use std::sync::Arc;

/// The time the sink runs on: the system clock, or a hand-moved one in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// What the callback sink needs besides the broker and PostgreSQL.
pub struct Options {
    /// Where payment pages are served (the `payment_url` of `order.created`).
    pub public_url: String,
    /// Opens the stores' sealed signing secrets (`security.data_key`).
    pub data_key: Arc<DataKey>,
    pub clock: Clock,
    pub sender: sender::SenderConfig,
}

/// Runs the intake over `orders.events` (consumer group `group`) and the sender until `stop`.
pub async fn run(
    broker: jivapay_platform::kafka::Broker,
    schemas: jivapay_schemas::SchemaRegistry,
    pool: sqlx::PgPool,
    group: String,
    options: Options,
    health: jivapay_platform::health::LoopHealth,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let intake = intake::CallbackIntake {
        public_url: options.public_url,
        clock: options.clock.clone(),
        policy: policy::PolicyCache::new(pool.clone()),
    };
    let sender = Arc::new(sender::Sender::new(
        pool.clone(),
        options.clock,
        options.data_key,
        options.sender,
    ));
    // The sender stops with the intake: a sink whose intake failed exits as a whole.
    let local = stop.child_token();
    let sending = tokio::spawn(sender.run(health.part("sender"), local.clone()));
    let taken = crate::runtime::run(
        crate::runtime::SinkLoop {
            broker: &broker,
            registry: schemas,
            pool,
            topic: jivapay_schemas::topics::ORDERS_EVENTS,
            group: &group,
            health,
        },
        intake,
        local.clone(),
    )
    .await;
    local.cancel();
    let sent = sending.await;
    taken?;
    sent??;
    Ok(())
}
