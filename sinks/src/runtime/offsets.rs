//! The offsets a sink has written, kept in PostgreSQL (`sink_offsets`) in the transaction of
//! the rows they cover, and cached here per partition until the assignment changes.

use super::batch::Read;
use super::{halted, Halted, Sink};
use jivapay_platform::failure::retry;
use jivapay_platform::health::LoopHealth;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use tokio_util::sync::CancellationToken;

/// The next offset to write, per partition.
pub type Advanced = BTreeMap<i32, i64>;

pub struct StoredOffsets {
    pool: PgPool,
    group: String,
    topic: String,
    /// The next offset PostgreSQL has, per partition seen since the last rebalance.
    next: HashMap<i32, i64>,
}

impl StoredOffsets {
    pub fn new(pool: PgPool, group: &str, topic: &str) -> Self {
        Self {
            pool,
            group: group.to_owned(),
            topic: topic.to_owned(),
            next: HashMap::new(),
        }
    }

    /// Drops the cache: after a rebalance another instance may have written a partition.
    pub fn forget(&mut self) {
        self.next.clear();
    }

    /// The records of `batch` not written yet (a replay after a restart or a rebalance reads
    /// some again).
    pub async fn unwritten<T>(
        &mut self,
        batch: Vec<Read<T>>,
        health: &LoopHealth,
        stop: &CancellationToken,
    ) -> Result<Vec<Read<T>>, Halted> {
        for read in &batch {
            let partition = read.raw.partition;
            if !self.next.contains_key(&partition) {
                let stored = retry(health, stop, "read sink offsets", || self.stored(partition))
                    .await
                    .map_err(halted)?;
                self.next.insert(partition, stored);
            }
        }
        Ok(batch
            .into_iter()
            .filter(|read| read.raw.offset >= self.next[&read.raw.partition])
            .collect())
    }

    async fn stored(&self, partition: i32) -> sqlx::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(partition)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0))
    }

    /// Writes `records` with `sink` and the offsets `advanced` in one transaction.
    pub async fn write_with<T: Sync, S: Sink<T>>(
        &self,
        sink: &S,
        records: &[&T],
        advanced: &Advanced,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        if !records.is_empty() {
            sink.write_batch(&mut tx, records).await?;
        }
        // One statement for every partition the batch advanced.
        let (partitions, offsets): (Vec<i32>, Vec<i64>) = advanced.iter().unzip();
        sqlx::query(
            "INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset)
             SELECT $1, $2, partition, next_offset FROM UNNEST($3::int[], $4::bigint[]) AS a(partition, next_offset)
             ON CONFLICT (consumer_group, topic, partition)
             DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(partitions)
        .bind(offsets)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Notes what a committed transaction wrote.
    pub fn written(&mut self, advanced: &Advanced) {
        self.next.extend(advanced.iter());
    }
}

/// The offsets after `reads`, per partition.
pub fn after<'a, T: 'a>(reads: impl IntoIterator<Item = &'a Read<T>>) -> Advanced {
    let mut advanced = Advanced::new();
    for read in reads {
        let next = advanced.entry(read.raw.partition).or_insert(0);
        *next = (*next).max(read.raw.offset + 1);
    }
    advanced
}
