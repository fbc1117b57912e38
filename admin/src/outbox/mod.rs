//! The transactional outbox: a write to master data enqueues the record for its compacted
//! topic in the same PostgreSQL transaction; the relay publishes it after commit and marks it
//! published only once the broker acknowledged.

pub mod relay;
pub mod snapshots;

use jivapay_schemas::{CodecError, Record, SchemaRegistry};
use sqlx::PgConnection;

/// Why a record could not be enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<EnqueueError> for crate::error::ApiError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::Codec(e) => e.into(),
            EnqueueError::Database(e) => e.into(),
        }
    }
}

/// Enqueues `record` (or a tombstone when `None`) for `topic` under `key`.
pub async fn enqueue<T: Record>(
    tx: &mut PgConnection,
    schemas: &SchemaRegistry,
    topic: &str,
    key: &str,
    record: Option<&T>,
) -> Result<(), EnqueueError> {
    let value = record.map(|r| schemas.encode(r)).transpose()?;
    sqlx::query("INSERT INTO outbox (topic, key, value, is_tombstone) VALUES ($1, $2, $3, $4)")
        .bind(topic)
        .bind(key)
        .bind(&value)
        .bind(value.is_none())
        .execute(tx)
        .await?;
    Ok(())
}
