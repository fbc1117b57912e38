//! Consuming records in a consumer group, with dead-lettering: a record that cannot be decoded
//! never stops the consumer. It is counted, logged with topic/partition/offset, copied to the
//! `deadletters` topic and skipped.

use super::broker::Broker;
use super::client_config::consumer_config;
use super::producer::{ProduceError, RecordProducer};
use jivapay_schemas::records::DeadLetter;
use jivapay_schemas::topics::DEAD_LETTERS;
use jivapay_schemas::{CodecError, Record, SchemaRegistry};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("dead-letter: {0}")]
    DeadLetter(#[from] ProduceError),
}

/// A record as read, before decoding.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// A decoded record. `value` is `None` for a tombstone (a deletion on a compacted topic).
#[derive(Debug, Clone, PartialEq)]
pub struct Consumed<T> {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: Option<T>,
}

pub struct RecordConsumer {
    consumer: StreamConsumer,
    registry: SchemaRegistry,
    dead_letters: RecordProducer,
    group: String,
}

impl RecordConsumer {
    /// Joins consumer group `group` and subscribes to `topics`.
    pub fn subscribe(
        broker: &Broker,
        registry: SchemaRegistry,
        group: &str,
        topics: &[&str],
    ) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer =
            consumer_config(broker.bootstrap_servers(), group, group).create()?;
        consumer.subscribe(topics)?;
        let dead_letters = RecordProducer::shared(broker, registry.clone())?;
        Ok(Self {
            consumer,
            registry,
            dead_letters,
            group: group.into(),
        })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The next record, undecoded.
    pub async fn next_raw(&self) -> Result<RawRecord, KafkaError> {
        let message = self.consumer.recv().await?;
        metrics::counter!("jivapay_records_consumed_total", "topic" => message.topic().to_owned())
            .increment(1);
        Ok(RawRecord {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
        })
    }

    /// Decodes a raw record as `T` (key and value).
    pub fn decode<T: Record>(&self, raw: RawRecord) -> Result<Consumed<T>, CodecError> {
        let key = match &raw.key {
            Some(key) => self.registry.decode_key(key)?,
            None => return Err(CodecError::Avro("record has no key".into())),
        };
        let value = raw
            .payload
            .as_deref()
            .map(|p| self.registry.decode::<T>(p))
            .transpose()?;
        Ok(Consumed {
            topic: raw.topic,
            partition: raw.partition,
            offset: raw.offset,
            key,
            value,
        })
    }

    /// The next record that decodes as `T`; every other record is dead-lettered and skipped.
    pub async fn next<T: Record>(&self) -> Result<Consumed<T>, ConsumeError> {
        loop {
            let raw = self.next_raw().await?;
            match self.decode::<T>(raw.clone()) {
                Ok(record) => return Ok(record),
                Err(error) => {
                    self.dead_letter(&raw, &error.to_string()).await?;
                    self.ack(&raw.topic, raw.partition, raw.offset)?;
                }
            }
        }
    }

    /// Copies a record this consumer gives up on to the dead-letter topic.
    pub async fn dead_letter(&self, raw: &RawRecord, error: &str) -> Result<(), ProduceError> {
        tracing::warn!(
            topic = %raw.topic,
            partition = raw.partition,
            offset = raw.offset,
            consumer = %self.group,
            error,
            "record dead-lettered"
        );
        metrics::counter!(
            "jivapay_records_dead_lettered_total",
            "topic" => raw.topic.clone(),
            "consumer" => self.group.clone()
        )
        .increment(1);
        let letter = DeadLetter {
            source_topic: raw.topic.clone(),
            source_partition: raw.partition,
            source_offset: raw.offset,
            consumer: self.group.clone(),
            error: error.to_owned(),
            key: raw.key.clone(),
            payload: raw.payload.clone(),
            failed_at: now_millis(),
        };
        self.dead_letters
            .send(DEAD_LETTERS, &raw.topic, &letter)
            .await
            .map(drop)
    }

    /// Marks everything up to and including `offset` as handled; committed in the background.
    pub fn ack(&self, topic: &str, partition: i32, offset: i64) -> Result<(), KafkaError> {
        self.consumer.store_offset(topic, partition, offset)
    }

    /// The committed position of `topic`/`partition` for this group, if any.
    pub fn committed(&self, topic: &str, partition: i32) -> Result<Option<i64>, KafkaError> {
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(topic, partition);
        let committed = self
            .consumer
            .committed_offsets(wanted, std::time::Duration::from_secs(10))?;
        Ok(committed
            .find_partition(topic, partition)
            .and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }))
    }

    /// Commits what was acknowledged and leaves the group. Call it instead of just dropping:
    /// librdkafka can hang when a consumer is dropped in some states.
    pub fn close(self) -> Result<(), KafkaError> {
        let committed = match self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing acknowledged since the last commit.
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => Ok(()),
            other => other,
        };
        self.consumer.unsubscribe();
        drop(self.dead_letters.close(std::time::Duration::from_secs(5)));
        committed
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
