//! The dead-letter topic: where a loop puts a record it cannot handle (undecodable, refused by
//! a constraint) with where it came from, which component gave up on it and why, before going
//! on. Never a silent skip: every letter is counted and logged at error level; the
//! `dead-letters` sink keeps them in PostgreSQL with a critical audit row, where an operator
//! lists them and re-drives them after a fix.

use super::broker::Broker;
use super::producer::{ProduceError, RecordProducer};
use jivapay_schemas::records::DeadLetter;
use jivapay_schemas::topics::DEAD_LETTERS;
use jivapay_schemas::SchemaRegistry;
use rdkafka::error::KafkaError;

/// A record as read, before decoding.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

#[derive(Clone)]
pub struct DeadLetters {
    producer: RecordProducer,
    component: String,
}

impl DeadLetters {
    /// Letters of `component` (a consumer group, or a processor's name), sent through the
    /// process's shared producer.
    pub fn new(
        broker: &Broker,
        registry: SchemaRegistry,
        component: impl Into<String>,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: RecordProducer::shared(broker, registry)?,
            component: component.into(),
        })
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    /// Sends `raw` with `reason`, waiting for the broker's acknowledgement. A record of the
    /// dead-letter topic itself is not sent again (it would come straight back): it is logged
    /// and counted, and stays where it is.
    pub async fn send(&self, raw: &RawRecord, reason: &str) -> Result<(), ProduceError> {
        tracing::error!(
            topic = %raw.topic,
            partition = raw.partition,
            offset = raw.offset,
            component = %self.component,
            reason,
            "record dead-lettered"
        );
        metrics::counter!(
            "jivapay_records_dead_lettered_total",
            "topic" => raw.topic.clone(),
            "consumer" => self.component.clone()
        )
        .increment(1);
        if raw.topic == DEAD_LETTERS {
            return Ok(());
        }
        let letter = DeadLetter {
            source_topic: raw.topic.clone(),
            source_partition: raw.partition,
            source_offset: raw.offset,
            consumer: self.component.clone(),
            error: reason.to_owned(),
            key: raw.key.clone(),
            payload: raw.payload.clone(),
            failed_at: chrono::Utc::now().timestamp_millis(),
        };
        self.producer
            .send(DEAD_LETTERS, &raw.topic, &letter)
            .await
            .map(drop)
    }
}
