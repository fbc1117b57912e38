//! Master data as the processors read it: `InMemoryMasterData`, fed from one ordered log of
//! changes — the compacted tables (`traders`, `stores`, `rates`, `settings`) as the admin
//! changes them, and `trader.capacity` as the capacity table reader finds it on its topic.
//!
//! A decision depends on the master data it saw, so every batch notes the version (the
//! number of changes applied) it ran at, and the replay (`shadow.rs`) moves a view of its own
//! to that version before it runs the batch again. Views only move forward.

use jivapay_processors::core::InMemoryMasterData;
use jivapay_schemas::records::{Rate, Setting, SettingType, Store, Trader, TraderCapacity};
use std::sync::Arc;

/// One change of one table row.
#[derive(Debug, Clone)]
pub enum Change {
    Trader(Trader),
    Store(Store),
    Rate(Rate),
    Setting(Setting),
    Capacity(TraderCapacity),
}

/// Every change, in the order the tables saw them.
#[derive(Debug, Default)]
pub struct MasterLog {
    changes: Vec<Change>,
}

impl MasterLog {
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// The version after the last change.
    pub fn version(&self) -> usize {
        self.changes.len()
    }
}

/// Master data at one version of the log.
pub struct MasterView {
    pub data: Arc<InMemoryMasterData>,
    applied: usize,
}

impl Default for MasterView {
    fn default() -> Self {
        MasterView {
            data: Arc::new(InMemoryMasterData::default()),
            applied: 0,
        }
    }
}

impl MasterView {
    /// Applies the changes up to `version` (never back: a view that is ahead stays).
    pub fn advance(&mut self, log: &MasterLog, version: usize) {
        while self.applied < version.min(log.changes.len()) {
            apply(&self.data, &log.changes[self.applied]);
            self.applied += 1;
        }
    }

    pub fn version(&self) -> usize {
        self.applied
    }
}

fn apply(data: &InMemoryMasterData, change: &Change) {
    match change.clone() {
        Change::Trader(t) => {
            data.traders.lock().expect("lock").insert(t.trader_id, t);
        }
        Change::Store(s) => {
            data.stores.lock().expect("lock").insert(s.store_id, s);
        }
        Change::Rate(r) => {
            data.rates
                .lock()
                .expect("lock")
                .insert(r.fiat_currency.clone(), r);
        }
        Change::Setting(s) => {
            data.settings.lock().expect("lock").insert(s.key.clone(), s);
        }
        Change::Capacity(c) => {
            // The table keeps the last record read for a key, whatever its version.
            data.capacities.lock().expect("lock").insert(c.trader_id, c);
        }
    }
}

/// A setting row as the admin API publishes it (`value_json` is the JSON value).
pub fn setting(key: &str, value_type: SettingType, value_json: String, at: i64) -> Setting {
    Setting {
        key: key.to_owned(),
        value_type,
        value_json,
        updated_at: at,
    }
}
