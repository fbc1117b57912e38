//! Writing a batch under the failure policy: undecodable records are dead-lettered first; the
//! rest goes in one transaction, retried while the failure is transient. When PostgreSQL
//! refuses the batch for one record's sake, the batch is written again one record at a time,
//! and each record it refuses is dead-lettered with the reason, its offset written past it, so
//! the records behind it are not held up.

use super::batch::Read;
use super::offsets::{after, StoredOffsets};
use super::{halted, Halted, Sink};
use jivapay_platform::failure::{retry, Failure, Halt};
use jivapay_platform::health::LoopHealth;
use jivapay_platform::kafka::{RawRecord, RecordConsumer};
use jivapay_schemas::Record;
use tokio_util::sync::CancellationToken;

pub async fn write<T: Record + Send + Sync, S: Sink<T>>(
    consumer: &RecordConsumer,
    health: &LoopHealth,
    offsets: &mut StoredOffsets,
    sink: &S,
    batch: &[Read<T>],
    stop: &CancellationToken,
) -> Result<(), Halted> {
    if batch.is_empty() {
        return Ok(());
    }
    for read in batch {
        if let Err(reason) = &read.value {
            dead_letter(consumer, health, stop, &read.raw, reason).await?;
        }
    }
    let records: Vec<&T> = batch.iter().filter_map(value).collect();
    let advanced = after(batch);
    match retry(health, stop, "write", || {
        offsets.write_with(sink, &records, &advanced)
    })
    .await
    {
        Ok(()) => {
            offsets.written(&advanced);
            return Ok(());
        }
        Err(Halt::Failed(e, Failure::Record)) => tracing::warn!(
            consumer = consumer.group(),
            error = %e,
            "a record of the batch was refused; writing it one record at a time"
        ),
        Err(halt) => return Err(halted(halt)),
    }
    for read in batch {
        let one = after([read]);
        let record: Vec<&T> = value(read).into_iter().collect();
        match retry(health, stop, "write", || {
            offsets.write_with(sink, &record, &one)
        })
        .await
        {
            Ok(()) => {}
            Err(Halt::Failed(e, Failure::Record)) => {
                dead_letter(consumer, health, stop, &read.raw, &e.to_string()).await?;
                retry(health, stop, "write offsets", || {
                    offsets.write_with(sink, &[], &one)
                })
                .await
                .map_err(halted)?;
            }
            Err(halt) => return Err(halted(halt)),
        }
        offsets.written(&one);
    }
    Ok(())
}

fn value<T>(read: &Read<T>) -> Option<&T> {
    read.value.as_ref().ok().and_then(Option::as_ref)
}

async fn dead_letter(
    consumer: &RecordConsumer,
    health: &LoopHealth,
    stop: &CancellationToken,
    raw: &RawRecord,
    reason: &str,
) -> Result<(), Halted> {
    retry(health, stop, "dead letter", || {
        consumer.dead_letter(raw, reason)
    })
    .await
    .map_err(halted)
}
