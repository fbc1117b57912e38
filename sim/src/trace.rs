//! Following one partition or one order on stderr, to find out why a seed fails:
//! `JIVAPAY_SIM_TRACE=<processor>/<partition>` (or `<processor>/*`) for restores, logged
//! batches, fenced batches and what compaction leaves of the decision log;
//! `JIVAPAY_SIM_ORDER=<order id>` for every record about an order, and every time marker.

use crate::env::Env;
use crate::processors::KINDS;
use crate::shadow;
use crate::topics::Record;
use crate::world::START;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::topics::TRADER_COMMANDS;

impl Env {
    /// Writes `what()` to stderr when partition `partition` of `kind` is traced.
    pub fn trace(&self, kind: ProcessorKind, partition: i32, what: impl FnOnce() -> String) {
        if let Some((name, traced)) = &self.trace {
            if name == kind.name() && (*traced == partition || *traced < 0) {
                eprintln!(
                    "[{:>10.3}] {} {partition}: {}",
                    (self.now - START) as f64 / 1000.0,
                    kind.name(),
                    what()
                );
            }
        }
    }

    pub(crate) fn trace_order_record(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        record: &Record,
    ) {
        let Some(order) = &self.trace_order else {
            return;
        };
        let at = (self.now - START) as f64 / 1000.0;
        let Some(payload) = &record.payload else {
            if let Some(stamp) = crate::codec::marker_stamp(&self.registry, &record.key, None) {
                eprintln!("[{at:>10.3}] {topic}/{partition}@{offset}: time marker {stamp}");
            }
            return;
        };
        let output = jivapay_schemas::records::LoggedOutput {
            topic: topic.to_owned(),
            key: record.key.clone(),
            payload: payload.clone(),
        };
        let text = match topic {
            TRADER_COMMANDS => self
                .registry
                .decode::<jivapay_schemas::records::TraderCommand>(payload)
                .map(|c| format!("{c:?}"))
                .unwrap_or_default(),
            _ => shadow::describe(&self.registry, &output),
        };
        if text.contains(order.as_str()) {
            eprintln!(
                "[{at:>10.3}] {topic}/{partition}@{offset} ({}): {}",
                record.origin.as_deref().unwrap_or("-"),
                shadow::shorten(&text, 700)
            );
        }
    }

    /// What compaction left of the traced partition's decision log and markers.
    pub fn trace_compaction(&self) {
        if let Some((name, partition)) = self.trace.clone() {
            if let Some(kind) = KINDS.iter().find(|k| k.name() == name) {
                let registry = &self.registry;
                let batches: Vec<String> = self
                    .topics
                    .peek(kind.changelog(), partition)
                    .map(|log| {
                        log.from(0)
                            .iter()
                            .filter_map(|(offset, r)| {
                                let key = registry.decode_key(&r.key).ok()?;
                                let entry: jivapay_schemas::records::ChangelogEntry =
                                    registry.decode(r.payload.as_deref()?).ok()?;
                                (key.starts_with("__batch") || entry.marker.is_some()).then(|| {
                                    format!(
                                        "{offset}:{key}{}@{}",
                                        entry
                                            .batch
                                            .map_or(String::new(), |b| format!("#{}", b.sequence)),
                                        entry.writer.unwrap_or_default()
                                    )
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.trace(*kind, partition, || {
                    format!("compacted; batches and markers left: {}", batches.join(" "))
                });
            }
        }
    }
}
