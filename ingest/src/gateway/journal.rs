//! The gateway's request journal: the first sight of each pay-in (`gateway_requests`, which
//! makes a repeated `external_order_id` the same order) written by group commit. Concurrent
//! requests queue here and a writer inserts whatever has gathered in one statement, so the
//! gateway pays one PostgreSQL round trip and one commit per batch instead of per request.
//!
//! A request waits at most for the batch in flight plus its own (see
//! [`jivapay_platform::group`], which also bounds the queue and runs a failed batch's rows one
//! by one).

use jivapay_platform::group::{Batch, Group, Shape};
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

type At = chrono::DateTime<chrono::Utc>;

/// Two writers: one fills its batch while the other's statement runs.
const SHAPE: Shape = Shape {
    queue: 4096,
    max_batch: 512,
    workers: 2,
};

/// A pay-in as the journal keeps it.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub store_id: Uuid,
    pub external_order_id: String,
    pub order_id: Uuid,
    pub request_hash: Vec<u8>,
    pub fiat_amount: Decimal,
    pub fiat_currency: String,
    pub payment_method: String,
    pub payment_token: String,
}

/// `(created_at, expires_at)` of a request written now; `None` if its
/// `(store, external_order_id)` was already there.
pub type Recorded = Option<(At, At)>;

pub struct Journal {
    group: Group<NewRequest, Recorded>,
}

/// One batch of the journal: an insert of the requests gathered.
struct Insert {
    pool: PgPool,
    window: chrono::Duration,
}

impl Batch<NewRequest, Recorded> for Insert {
    async fn run(&self, requests: &[NewRequest]) -> sqlx::Result<Vec<Recorded>> {
        insert(&self.pool, self.window, requests).await
    }
}

impl Journal {
    /// Starts the writers; they stop once the journal is dropped and its queue is drained.
    /// `window` is the payment window new orders get.
    pub fn start(pool: PgPool, window: Duration) -> Arc<Self> {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(15));
        Arc::new(Self {
            group: Group::start(SHAPE, Insert { pool, window }),
        })
    }

    /// Writes `request` unless its key is already there.
    pub async fn record(&self, request: NewRequest) -> sqlx::Result<Recorded> {
        self.group.call(request).await
    }
}

/// Inserts `requests` in one statement; per request, in order, what [`Journal::record`]
/// answers. Of several requests with one key in a batch, the first is the one written.
async fn insert(
    pool: &PgPool,
    window: chrono::Duration,
    requests: &[NewRequest],
) -> sqlx::Result<Vec<Recorded>> {
    fn column<T>(requests: &[NewRequest], f: impl Fn(&NewRequest) -> T) -> Vec<T> {
        requests.iter().map(f).collect()
    }
    let rows: Vec<(Uuid, String, At, At)> = sqlx::query_as(
        "INSERT INTO gateway_requests (store_id, external_order_id, order_id, direction, request_hash, fiat_amount,
             fiat_currency, payment_method, expires_at, payment_token)
         SELECT store_id, external_order_id, order_id, 'pay_in', request_hash, fiat_amount, fiat_currency,
                payment_method, now() + $9, payment_token
         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::bytea[], $5::numeric[], $6::text[], $7::text[], $8::text[])
             AS r(store_id, external_order_id, order_id, request_hash, fiat_amount, fiat_currency, payment_method, payment_token)
         ON CONFLICT (store_id, external_order_id) DO NOTHING
         RETURNING store_id, external_order_id, created_at, expires_at",
    )
    .bind(column(requests, |r| r.store_id))
    .bind(column(requests, |r| r.external_order_id.clone()))
    .bind(column(requests, |r| r.order_id))
    .bind(column(requests, |r| r.request_hash.clone()))
    .bind(column(requests, |r| r.fiat_amount))
    .bind(column(requests, |r| r.fiat_currency.clone()))
    .bind(column(requests, |r| r.payment_method.clone()))
    .bind(column(requests, |r| r.payment_token.clone()))
    .bind(window)
    .fetch_all(pool)
    .await?;
    let mut written: HashMap<(Uuid, String), (At, At)> = rows
        .into_iter()
        .map(|(store, external, created, expires)| ((store, external), (created, expires)))
        .collect();
    Ok(requests
        .iter()
        // `remove`: a later request with the same key in this batch is a repeat.
        .map(|r| written.remove(&(r.store_id, r.external_order_id.clone())))
        .collect())
}
