//! A compacted topic read as a table: an in-memory map from key to the latest value, built from
//! the beginning of every partition and kept current while the process runs. A tombstone
//! removes its key. Readers see changes without a restart.
//!
//! It reads with manual assignment (no consumer group, nothing committed): every instance of
//! every component holds the whole table.

use super::broker::Broker;
use super::client_config::consumer_config;
use jivapay_schemas::{Record, SchemaRegistry};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Startup(#[from] crate::StartupError),
    #[error("topic {0} does not exist: run `jivapay topics create` first")]
    NoTopic(String),
}

pub struct Table<T> {
    topic: String,
    rows: Arc<RwLock<HashMap<String, T>>>,
    /// Counts applied records, so callers can wait for a change.
    applied: watch::Receiver<u64>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Self {
            topic: self.topic.clone(),
            rows: self.rows.clone(),
            applied: self.applied.clone(),
        }
    }
}

impl<T: Record + Clone + Send + Sync + 'static> Table<T> {
    /// Starts reading `topic` (all its partitions, from the beginning) until `stop`.
    pub async fn start(
        broker: &Broker,
        registry: SchemaRegistry,
        topic: &str,
        stop: CancellationToken,
    ) -> Result<Self, TableError> {
        let group = format!("table-{topic}-{}", uuid_like());
        let consumer: StreamConsumer =
            consumer_config(broker.bootstrap_servers(), &group, &group).create()?;
        let counts = broker.partition_counts(&[topic]).await?;
        let partitions = counts
            .first()
            .map(|(_, n)| *n)
            .ok_or_else(|| TableError::NoTopic(topic.to_owned()))?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let rows: Arc<RwLock<HashMap<String, T>>> = Arc::default();
        let (applied_tx, applied) = watch::channel(0u64);
        let table = Self {
            topic: topic.to_owned(),
            rows: rows.clone(),
            applied,
        };
        let topic = topic.to_owned();
        let dead_letters = super::dead_letters::DeadLetters::new(
            broker,
            registry.clone(),
            format!("table {topic}"),
        )?;
        tokio::spawn(async move {
            let mut count = 0u64;
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => break,
                    message = consumer.recv() => message,
                };
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, topic, "table read error");
                        continue;
                    }
                };
                let key = message.key().map(|k| registry.decode_key(k));
                let value = message
                    .payload()
                    .map(|p| registry.decode::<T>(p))
                    .transpose();
                match (key, value) {
                    (Some(Ok(key)), Ok(Some(value))) => {
                        rows.write().expect("table lock").insert(key, value);
                    }
                    (Some(Ok(key)), Ok(None)) => {
                        rows.write().expect("table lock").remove(&key);
                    }
                    (key, value) => {
                        let error = match (key, value) {
                            (Some(Err(e)), _) | (_, Err(e)) => e.to_string(),
                            _ => "record has no key".to_owned(),
                        };
                        metrics::counter!("jivapay_table_records_skipped_total", "topic" => topic.clone())
                            .increment(1);
                        let raw = super::dead_letters::RawRecord {
                            topic: topic.clone(),
                            partition: message.partition(),
                            offset: message.offset(),
                            key: message.key().map(<[u8]>::to_vec),
                            payload: message.payload().map(<[u8]>::to_vec),
                        };
                        // Every instance reads the whole table, so each one that starts letters
                        // the record again; the dead-letters sink keeps one row per component.
                        if let Err(e) = dead_letters
                            .send(&raw, &format!("undecodable: {error}"))
                            .await
                        {
                            tracing::error!(topic, error = %e, "dead letter of a table record not sent");
                        }
                    }
                }
                count += 1;
                applied_tx.send_replace(count);
            }
            consumer.unassign().ok();
        });
        Ok(table)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn get(&self, key: &str) -> Option<T> {
        self.rows.read().expect("table lock").get(key).cloned()
    }

    /// Runs `f` over the whole table, without copying it.
    pub fn read<R>(&self, f: impl FnOnce(&HashMap<String, T>) -> R) -> R {
        f(&self.rows.read().expect("table lock"))
    }

    pub fn len(&self) -> usize {
        self.rows.read().expect("table lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits (bounded) until the value under `key` satisfies `ready`; returns it.
    pub async fn wait_for(
        &self,
        key: &str,
        timeout: Duration,
        ready: impl Fn(Option<&T>) -> bool,
    ) -> Option<Option<T>> {
        let mut applied = self.applied.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current = self.get(key);
            if ready(current.as_ref()) {
                return Some(current);
            }
            if tokio::time::timeout_at(deadline, applied.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", std::process::id(), nanos)
}
