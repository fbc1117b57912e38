//! What the gateway's handlers reach.

use crate::cache::GatewayCache;
use crate::gateway::journal::Journal;
use crate::limits::GatewayLimits;
use crate::payment_page::ReceiptStore;
use jivapay_core::crypto::DataKey;
use jivapay_platform::kafka::RecordProducer;
use jivapay_platform::order_changes::OrderChanges;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct IngestState {
    pub pool: PgPool,
    pub producer: RecordProducer,
    /// Derives payment-page tokens (unguessable without it, the same for the same order).
    pub data_key: Arc<DataKey>,
    /// Base of payment page URLs, e.g. `https://pay.example.com`.
    pub public_url: String,
    /// Payment window given to new orders (the trader book enforces the one it reads from
    /// settings; this is what the gateway promises in its answer).
    pub payment_window: Duration,
    /// Where customers' receipts are stored (local folder or S3, from `receipts.*` settings).
    pub receipts: Arc<ReceiptStore>,
    /// API keys and pool checks, kept true by a listener (see [`crate::cache`]).
    pub cache: Arc<GatewayCache>,
    /// Per-store request budgets.
    pub limits: Arc<GatewayLimits>,
    /// Writes the first sight of each pay-in, batched (see [`crate::gateway::journal`]).
    pub journal: Arc<Journal>,
    /// Order changes for the payment streams (fed by a listener, see
    /// [`jivapay_platform::order_changes`]).
    pub changes: Arc<OrderChanges>,
}
