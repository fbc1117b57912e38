//! The outbox relay: publishes unpublished outbox rows in id order and marks them published
//! only after the broker acknowledged each one.
//!
//! One relay works at a time (a PostgreSQL advisory lock per batch), so records of one key
//! reach the topic in the order they were committed even with several admin replicas. If the
//! broker fails, the batch stops at the first failure, the rows stay unpublished (with the error
//! and attempt count recorded), and the next round retries them: nothing is lost. A row that
//! was published but not yet marked is published again after a crash; it carries the same bytes
//! for the same key, which a table reader cannot tell from one record.

use jivapay_platform::health::LoopHealth;
use jivapay_platform::kafka::RecordProducer;
use sqlx::{PgPool, Row};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows published per round.
pub const BATCH_ROWS_MAX: i64 = 500;
/// Pause between rounds when nothing is pending (bounds the publish latency).
pub const IDLE_POLL_MS: u64 = 100;
/// Pause after a failed round (the broker is probably unavailable).
pub const FAILURE_BACKOFF_MS: u64 = 1_000;
/// Advisory lock key that makes the relay a single worker across replicas ("outbox" in hex).
const RELAY_LOCK: i64 = 0x6f75_7462_6f78;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("publish outbox row {id}: {reason}")]
    Publish { id: i64, reason: String },
}

/// Publishes one batch; returns how many rows were published (0: nothing pending, or another
/// replica holds the lock).
pub async fn publish_batch(pool: &PgPool, producer: &RecordProducer) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let rows = sqlx::query(
        "SELECT id, topic, key, value FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
    )
    .bind(BATCH_ROWS_MAX)
    .fetch_all(&mut *tx)
    .await?;
    let mut published = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in &rows {
        let id: i64 = row.get("id");
        let topic: String = row.get("topic");
        let key = producer.registry().encode_key(row.get::<&str, _>("key"));
        let value: Option<Vec<u8>> = row.get("value");
        match producer
            .send_bytes(&topic, Some(&key), value.as_deref())
            .await
        {
            Ok(_) => published.push(id),
            Err(e) => {
                failure = Some(RelayError::Publish {
                    id,
                    reason: e.to_string(),
                });
                break;
            }
        }
    }
    sqlx::query(
        "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1)",
    )
    .bind(&published)
    .execute(&mut *tx)
    .await?;
    if let Some(RelayError::Publish { id, reason }) = &failure {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
            .bind(id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    metrics::counter!("jivapay_outbox_published_total").increment(published.len() as u64);
    match failure {
        Some(e) => Err(e),
        None => Ok(published.len()),
    }
}

/// Runs until `stop` is cancelled, telling `health` whether its rounds succeed (commands that
/// wait in the outbox are promises not yet kept).
pub async fn run(
    pool: PgPool,
    producer: RecordProducer,
    health: LoopHealth,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let round = publish_batch(&pool, &producer).await;
        let pause = match round {
            Ok(n) if n as i64 == BATCH_ROWS_MAX => Duration::ZERO,
            Ok(_) => Duration::from_millis(IDLE_POLL_MS),
            Err(ref e) => {
                metrics::counter!("jivapay_outbox_failures_total").increment(1);
                health.retrying(&format!("outbox relay round failed: {e}"));
                Duration::from_millis(FAILURE_BACKOFF_MS)
            }
        };
        if round.is_ok() {
            health.succeeded();
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    drop(producer.close(Duration::from_secs(5)));
}
