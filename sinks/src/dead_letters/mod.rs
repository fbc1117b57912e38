//! The dead-letters sink: `deadletters` → `dead_letters` in PostgreSQL, each new letter with a
//! `critical` row in the audit log, in one transaction with the consumed offsets. Key: source
//! topic. Guarantee: one row per record and component that gave up on it (a letter sent twice
//! after a crash inserts nothing the second time), so the management API lists every record a
//! loop could not handle and can re-drive it.

use crate::runtime::Sink;
use chrono::{DateTime, Utc};
use jivapay_schemas::records::DeadLetter;
use sqlx::PgConnection;

pub struct DeadLettersSink;

impl Sink<DeadLetter> for DeadLettersSink {
    /// One statement per batch: the letters not recorded yet, and an audit row for each.
    async fn write_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        letters: &'a [&'a DeadLetter],
    ) -> sqlx::Result<()> {
        let mut columns = Columns::default();
        for letter in letters {
            columns.push(letter);
        }
        sqlx::query(
            "WITH letters AS (
                 INSERT INTO dead_letters (component, source_topic, source_partition, source_offset,
                                           reason, record_key, payload, failed_at)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::bigint[], $5::text[],
                                      $6::bytea[], $7::bytea[], $8::timestamptz[])
                 ON CONFLICT (component, source_topic, source_partition, source_offset) DO NOTHING
                 RETURNING id, component, source_topic, source_partition, source_offset, reason
             )
             INSERT INTO audit_log (actor_role, action, entity_type, entity_id, after, level)
             SELECT 'system', 'dead_letter.record', 'dead_letter', id::text,
                    jsonb_build_object('component', component, 'topic', source_topic,
                                       'partition', source_partition, 'offset', source_offset,
                                       'reason', reason),
                    'critical'
             FROM letters",
        )
        .bind(&columns.component)
        .bind(&columns.topic)
        .bind(&columns.partition)
        .bind(&columns.offset)
        .bind(&columns.reason)
        .bind(&columns.key)
        .bind(&columns.payload)
        .bind(&columns.failed_at)
        .execute(tx)
        .await
        .map(drop)
    }
}

/// The batch as one array per column, for UNNEST.
#[derive(Default)]
struct Columns {
    component: Vec<String>,
    topic: Vec<String>,
    partition: Vec<i32>,
    offset: Vec<i64>,
    reason: Vec<String>,
    key: Vec<Option<Vec<u8>>>,
    payload: Vec<Option<Vec<u8>>>,
    failed_at: Vec<DateTime<Utc>>,
}

impl Columns {
    fn push(&mut self, letter: &DeadLetter) {
        self.component.push(letter.consumer.clone());
        self.topic.push(letter.source_topic.clone());
        self.partition.push(letter.source_partition);
        self.offset.push(letter.source_offset);
        // PostgreSQL text cannot hold NUL; a reason is for people to read.
        self.reason.push(letter.error.replace('\0', ""));
        self.key.push(letter.key.clone());
        self.payload.push(letter.payload.clone());
        self.failed_at
            .push(DateTime::from_timestamp_millis(letter.failed_at).unwrap_or_else(Utc::now));
    }
}
