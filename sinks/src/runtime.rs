//! The sink loop, written once: consume a topic in a consumer group, write each batch to
//! PostgreSQL in one transaction together with the consumed offsets (`sink_offsets`), commit.
//! PostgreSQL's offsets are the truth: records below them are skipped after a rebalance or a
//! restart, and each sink's writes are idempotent by the record's deterministic id as well
//! (`INSERT … ON CONFLICT DO NOTHING`), so a replay changes nothing.

use jivapay_platform::kafka::{Broker, RecordConsumer};
use jivapay_schemas::{Record, SchemaRegistry};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most records written in one transaction.
pub const BATCH_RECORDS_MAX: usize = 500;
/// How long a batch waits for more records once it has one.
pub const BATCH_WAIT_MS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("dead letter: {0}")]
    DeadLetter(#[from] jivapay_platform::kafka::ProduceError),
}

/// Writes records inside the batch's transaction.
pub trait Sink<T: Sync>: Send + Sync {
    /// Writes a batch's records, in their order, in a few set-based statements: a round trip
    /// per record is what bounds a sink's throughput.
    fn write_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        records: &'a [&'a T],
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'a;
}

async fn stored_offset(
    pool: &PgPool,
    group: &str,
    topic: &str,
    partition: i32,
) -> sqlx::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
    )
    .bind(group)
    .bind(topic)
    .bind(partition)
    .fetch_optional(pool)
    .await?
    .unwrap_or(0))
}

/// Runs `sink` over `topic` until `stop`.
pub async fn run<T: Record + Send + Sync, S: Sink<T>>(
    broker: &Broker,
    registry: SchemaRegistry,
    pool: PgPool,
    topic: &str,
    group: &str,
    sink: S,
    stop: CancellationToken,
) -> Result<(), SinkError> {
    let consumer = RecordConsumer::subscribe(broker, registry, group, &[topic])?;
    // The next offset PostgreSQL has for each partition seen so far.
    let mut next: HashMap<i32, i64> = HashMap::new();
    let result = loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            record = consumer.next::<T>() => record,
        };
        let mut batch = vec![match first {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(topic, group, error = %e, "sink consume error");
                continue;
            }
        }];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(BATCH_WAIT_MS);
        while batch.len() < BATCH_RECORDS_MAX {
            match tokio::time::timeout_at(deadline, consumer.next::<T>()).await {
                Ok(Ok(record)) => batch.push(record),
                _ => break,
            }
        }
        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(e) => break Err(e.into()),
        };
        let mut advanced: HashMap<i32, i64> = HashMap::new();
        let mut to_write: Vec<&T> = Vec::with_capacity(batch.len());
        let mut failed = None;
        for record in &batch {
            let stored = match next.get(&record.partition) {
                Some(n) => *n,
                None => match stored_offset(&pool, group, topic, record.partition).await {
                    Ok(n) => *next.entry(record.partition).or_insert(n),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
            };
            if record.offset < stored {
                continue; // written before a restart or a rebalance
            }
            if let Some(value) = &record.value {
                to_write.push(value);
            }
            advanced.insert(record.partition, record.offset + 1);
        }
        if failed.is_none() {
            failed = sink.write_batch(&mut tx, &to_write).await.err();
        }
        if let Some(e) = failed {
            // Nothing of the batch is kept; the records are read again after a restart.
            tracing::error!(topic, group, error = %e, "sink write failed");
            break Err(e.into());
        }
        // One statement for every partition the batch advanced.
        let (partitions, offsets): (Vec<i32>, Vec<i64>) = advanced.iter().unzip();
        let offsets_written = sqlx::query(
            "INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset)
             SELECT $1, $2, partition, next_offset FROM UNNEST($3::int[], $4::bigint[]) AS a(partition, next_offset)
             ON CONFLICT (consumer_group, topic, partition)
             DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        )
        .bind(group)
        .bind(topic)
        .bind(partitions)
        .bind(offsets)
        .execute(&mut *tx)
        .await;
        if let Err(e) = offsets_written {
            break Err(e.into());
        }
        if let Err(e) = tx.commit().await {
            break Err(e.into());
        }
        next.extend(advanced.iter());
        metrics::counter!("jivapay_sink_records_total", "sink" => group.to_owned())
            .increment(batch.len() as u64);
        for record in &batch {
            consumer
                .ack(&record.topic, record.partition, record.offset)
                .ok();
        }
    };
    consumer.close().ok();
    result
}
