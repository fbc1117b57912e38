//! Reading a batch: the first record (however long it takes), then more for a few
//! milliseconds, up to the batch size. Records are decoded here; one that does not decode
//! stays in the batch, to be dead-lettered in its place.

use super::{BATCH_RECORDS_MAX, BATCH_WAIT_MS};
use jivapay_platform::failure::CONSUME_ERROR_PAUSE;
use jivapay_platform::health::LoopHealth;
use jivapay_platform::kafka::{RawRecord, RecordConsumer};
use jivapay_schemas::Record;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an idle loop waits for a record before it reports itself running again (a consume
/// error it reported may have passed without a record to show it).
const IDLE_REPORT_MS: u64 = 1_000;

/// One record of a batch: as read, and decoded — `Ok(None)` is a tombstone, `Err` says why it
/// does not decode.
pub struct Read<T> {
    pub raw: RawRecord,
    pub value: Result<Option<T>, String>,
}

/// The next batch, or `None` once `stop` is cancelled.
pub async fn read_batch<T: Record>(
    consumer: &RecordConsumer,
    health: &LoopHealth,
    stop: &CancellationToken,
) -> Option<Vec<Read<T>>> {
    let first = loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return None,
            next = tokio::time::timeout(Duration::from_millis(IDLE_REPORT_MS), consumer.next_raw()) => next,
        };
        match next {
            Ok(Ok(raw)) => break raw,
            Ok(Err(e)) => {
                // librdkafka reconnects by itself; the error says it is trying.
                health.retrying(&format!("consume: {e}"));
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(CONSUME_ERROR_PAUSE) => {}
                }
            }
            Err(_idle) => health.succeeded(),
        }
    };
    let mut batch = vec![decode(consumer, first)];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(BATCH_WAIT_MS);
    while batch.len() < BATCH_RECORDS_MAX {
        match tokio::time::timeout_at(deadline, consumer.next_raw()).await {
            Ok(Ok(raw)) => batch.push(decode(consumer, raw)),
            _ => break,
        }
    }
    Some(batch)
}

fn decode<T: Record>(consumer: &RecordConsumer, raw: RawRecord) -> Read<T> {
    let value = consumer
        .decode::<T>(raw.clone())
        .map(|consumed| consumed.value)
        .map_err(|e| format!("undecodable: {e}"));
    Read { raw, value }
}

/// The last offset of each topic and partition in `batch`.
pub fn last_per_partition<T>(batch: &[Read<T>]) -> Vec<(&str, i32, i64)> {
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for read in batch {
        let slot = last
            .entry((read.raw.topic.as_str(), read.raw.partition))
            .or_insert(read.raw.offset);
        *slot = (*slot).max(read.raw.offset);
    }
    last.into_iter()
        .map(|((topic, partition), offset)| (topic, partition, offset))
        .collect()
}
