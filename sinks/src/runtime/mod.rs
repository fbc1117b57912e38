//! The sink loop, written once: consume a topic in a consumer group, write each batch to
//! PostgreSQL in one transaction together with the consumed offsets (`sink_offsets`), commit.
//! PostgreSQL's offsets are the truth: records below them are skipped after a rebalance or a
//! restart, and each sink's writes are idempotent by the record's deterministic id as well
//! (`INSERT … ON CONFLICT DO NOTHING`), so a replay changes nothing.
//!
//! Failures follow `jivapay_platform::failure`: a transient one (PostgreSQL gone, a deadlock,
//! the broker unreachable) retries the same batch until it goes through; a record PostgreSQL
//! refuses by a constraint, or one that does not decode, is dead-lettered and the records
//! after it are written; anything else ends the loop with the error (the process exits).

mod batch;
mod offsets;
mod write;

use batch::read_batch;
use jivapay_platform::failure::Halt;
use jivapay_platform::health::LoopHealth;
use jivapay_platform::kafka::{Broker, RecordConsumer};
use jivapay_schemas::{Record, SchemaRegistry};
use offsets::StoredOffsets;
use sqlx::{PgConnection, PgPool};
use std::future::Future;
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

/// How a step of the loop ended early: `None` when the loop is stopping, else the failure no
/// retry mends.
type Halted = Option<SinkError>;

fn halted<E: Into<SinkError>>(halt: Halt<E>) -> Halted {
    match halt {
        Halt::Stopped => None,
        Halt::Failed(e, _) => Some(e.into()),
    }
}

/// Writes records inside the batch's transaction.
pub trait Sink<T: Sync>: Send + Sync {
    /// Writes a batch's records, in their order, in a few set-based statements: a round trip
    /// per record is what bounds a sink's throughput. An error for one bad record must be one
    /// PostgreSQL classifies as a data or constraint error (SQLSTATE 22, 23 or a raised
    /// exception): the loop then finds that record by writing the batch one record at a time.
    fn write_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        records: &'a [&'a T],
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'a;
}

/// Where a sink runs.
pub struct SinkLoop<'a> {
    pub broker: &'a Broker,
    pub registry: SchemaRegistry,
    pub pool: PgPool,
    pub topic: &'a str,
    /// Consumer group, and the component named in dead letters.
    pub group: &'a str,
    pub health: LoopHealth,
}

/// Runs `sink` over the loop's topic until `stop`. Returns an error only for a failure no
/// retry can mend.
pub async fn run<T: Record + Send + Sync, S: Sink<T>>(
    at: SinkLoop<'_>,
    sink: S,
    stop: CancellationToken,
) -> Result<(), SinkError> {
    let consumer = RecordConsumer::subscribe(at.broker, at.registry, at.group, &[at.topic])?;
    at.health.succeeded();
    let mut offsets = StoredOffsets::new(at.pool.clone(), at.group, at.topic);
    let result = drive(&consumer, &at.health, &mut offsets, &sink, &stop).await;
    // Leave the group deliberately on every path: librdkafka can hang when a consumer is
    // dropped in some states.
    consumer.close().ok();
    match &result {
        Ok(()) => at.health.stopped("stopped"),
        Err(e) => at.health.stopped(&e.to_string()),
    }
    result
}

async fn drive<T: Record + Send + Sync, S: Sink<T>>(
    consumer: &RecordConsumer,
    health: &LoopHealth,
    offsets: &mut StoredOffsets,
    sink: &S,
    stop: &CancellationToken,
) -> Result<(), SinkError> {
    loop {
        let Some(batch) = read_batch::<T>(consumer, health, stop).await else {
            return Ok(());
        };
        if consumer.rebalanced() {
            // A revoked partition may come back later with records another instance wrote.
            offsets.forget();
        }
        let outcome = match offsets.unwritten(batch, health, stop).await {
            Ok(batch) => write::write(consumer, health, offsets, sink, &batch, stop)
                .await
                .map(|()| batch),
            Err(halt) => Err(halt),
        };
        let batch = match outcome {
            Ok(batch) => batch,
            Err(halted) => return halted.map_or(Ok(()), Err),
        };
        health.succeeded();
        metrics::counter!("jivapay_sink_records_total", "sink" => consumer.group().to_owned())
            .increment(batch.len() as u64);
        for (topic, partition, offset) in batch::last_per_partition(&batch) {
            consumer.ack(topic, partition, offset).ok();
        }
    }
}
