//! Consuming records in a consumer group. [`RecordConsumer::next`] dead-letters a record that
//! cannot be decoded instead of stopping (tests and tools); the streaming loops read raw
//! records and apply the failure policy themselves (`jivapay_platform::failure`).

use super::broker::Broker;
use super::client_config::consumer_config;
use super::context::{LoopContext, Rebalanced, STATISTICS_INTERVAL_MS};
use super::dead_letters::DeadLetters;
pub use super::dead_letters::RawRecord;
use super::producer::ProduceError;
use jivapay_schemas::{CodecError, Record, SchemaRegistry};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("dead-letter: {0}")]
    DeadLetter(#[from] ProduceError),
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
    consumer: StreamConsumer<LoopContext>,
    registry: SchemaRegistry,
    dead_letters: DeadLetters,
    rebalanced: Rebalanced,
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
        let mut config = consumer_config(broker.bootstrap_servers(), group, group);
        config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        let context = LoopContext::new("jivapay_sink_consumer_lag", "sink", group);
        let rebalanced = context.rebalanced();
        let consumer: StreamConsumer<LoopContext> = config.create_with_context(context)?;
        consumer.subscribe(topics)?;
        let dead_letters = DeadLetters::new(broker, registry.clone(), group)?;
        Ok(Self {
            consumer,
            registry,
            dead_letters,
            rebalanced,
            group: group.into(),
        })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Whether partitions were assigned or revoked since the last call: what a loop cached per
    /// partition may belong to another instance now.
    pub fn rebalanced(&self) -> bool {
        self.rebalanced.take()
    }

    /// Where this consumer's records go when it gives up on them.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
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
        self.dead_letters.send(raw, error).await
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
        committed
    }
}
