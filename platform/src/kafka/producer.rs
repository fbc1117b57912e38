//! Producing records: Avro in the Confluent wire format, keys included.

use super::broker::Broker;
use super::client_config::producer_config;
use crate::failure::breaks_the_producer;
use jivapay_schemas::{CodecError, Record, SchemaRegistry};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The record does not fit its schema: a bug in the caller, never retried.
    #[error("encode: {0}")]
    Encode(#[from] CodecError),
    #[error("produce to {topic}: {source}")]
    Kafka { topic: String, source: KafkaError },
}

impl ProduceError {
    /// Whether trying again may succeed (the broker was unavailable, a timeout, …).
    pub fn is_retriable(&self) -> bool {
        matches!(self, ProduceError::Kafka { .. })
    }
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Clone)]
pub struct RecordProducer {
    producer: FutureProducer,
    registry: SchemaRegistry,
    /// Cancelled when a send breaks the producer ([`breaks_the_producer`]); the broker's token
    /// for the shared producer.
    broken: CancellationToken,
}

impl RecordProducer {
    pub fn new(
        broker: &Broker,
        registry: SchemaRegistry,
        client_id: &str,
    ) -> Result<Self, KafkaError> {
        Self::with_message_timeout(broker, registry, client_id, Duration::from_secs(30))
    }

    /// The process's shared producer ([`Broker::shared_producer`]). Components of one process
    /// (all of them in `jivapay all`) then send a partition's records in one batch per request
    /// instead of one batch each: fewer requests, fewer client threads, and on the embedded
    /// broker fewer message sets, which its fetches walk one by one (docs/benchmarks.md).
    pub fn shared(broker: &Broker, registry: SchemaRegistry) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: broker.shared_producer()?,
            registry,
            broken: broker.producer_broken(),
        })
    }

    /// Whether both send through the same librdkafka client.
    pub fn shares_client_with(&self, other: &RecordProducer) -> bool {
        std::ptr::eq(
            self.producer.client().native_ptr(),
            other.producer.client().native_ptr(),
        )
    }

    /// A producer whose sends fail after `timeout` without an acknowledgement (librdkafka
    /// retries within it).
    pub fn with_message_timeout(
        broker: &Broker,
        registry: SchemaRegistry,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let mut config = producer_config(broker.bootstrap_servers(), client_id);
        config.set("message.timeout.ms", timeout.as_millis().to_string());
        Ok(Self {
            producer: config.create()?,
            registry,
            broken: CancellationToken::new(),
        })
    }

    pub fn registry(&self) -> &SchemaRegistry {
        &self.registry
    }

    /// Encodes and sends one record, waiting for the broker's acknowledgement.
    pub async fn send<T: Record>(
        &self,
        topic: &str,
        key: &str,
        record: &T,
    ) -> Result<Delivered, ProduceError> {
        let payload = self.registry.encode(record)?;
        let key = self.registry.encode_key(key);
        self.send_bytes(topic, Some(&key), Some(&payload)).await
    }

    /// Sends a tombstone (null value), which deletes `key` from a compacted topic.
    pub async fn send_tombstone(&self, topic: &str, key: &str) -> Result<Delivered, ProduceError> {
        let key = self.registry.encode_key(key);
        self.send_bytes(topic, Some(&key), None).await
    }

    /// Sends bytes as they are (dead letters, and tests that need malformed records).
    pub async fn send_bytes(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<Delivered, ProduceError> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.delivered(topic, self.producer.send(record, Timeout::Never).await)
    }

    /// Sends bytes to one partition chosen by the caller (restore markers of changelogs).
    pub async fn send_bytes_to_partition(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
    ) -> Result<Delivered, ProduceError> {
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(partition)
            .key(key)
            .payload(payload);
        self.delivered(topic, self.producer.send(record, Timeout::Never).await)
    }

    /// Sends an encoded record with one header (processor outputs carry their origin), to a
    /// partition chosen by the caller or else by its key.
    pub async fn send_bytes_with_header(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: &[u8],
        header: Option<(&str, &[u8])>,
    ) -> Result<Delivered, ProduceError> {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).key(key).payload(payload);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some((name, value)) = header {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: name,
                value: Some(value),
            }));
        }
        self.delivered(topic, self.producer.send(record, Timeout::Never).await)
    }

    /// Hands a record for one partition to the producer without waiting for the broker: for
    /// records whose loss costs only time (time markers), so a loop need not stall on them.
    pub fn enqueue_to_partition(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: Option<&[u8]>,
    ) -> Result<(), KafkaError> {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).partition(partition).key(key);
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        // The delivery future is dropped: nobody waits for the acknowledgement.
        self.producer
            .send_result(record)
            .map(drop)
            .map_err(|(error, _)| error)
    }

    /// The outcome of one send; a failure that breaks the producer is announced once.
    fn delivered(
        &self,
        topic: &str,
        outcome: rdkafka::producer::future_producer::OwnedDeliveryResult,
    ) -> Result<Delivered, ProduceError> {
        match outcome {
            Ok(delivery) => Ok(Delivered {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((source, _)) => {
                if breaks_the_producer(&source) && !self.broken.is_cancelled() {
                    tracing::error!(topic, error = %source, "the producer can send nothing again; the process must restart");
                    self.broken.cancel();
                }
                Err(ProduceError::Kafka {
                    topic: topic.into(),
                    source,
                })
            }
        }
    }

    /// Waits (bounded) for every record in flight; call before dropping the producer.
    pub fn close(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(Timeout::After(timeout))
    }
}
