//! Fraud's per-store state and how it is laid out in the changelog.
//!
//! One store's state is split over several changelog keys so that no record grows with the
//! store's volume (a store with 100 000 recent orders would otherwise write megabytes per
//! batch, beyond a broker's message size):
//!
//! | state key | value |
//! |---|---|
//! | `{store}` | the store's 60 s order window (orders per second) and its balances per currency |
//! | `{store}/order/{order_id}` | when the order was first seen (deduplication) |
//! | `{store}/posting/{posting_id}` | when the posting was applied (each posting once) |
//! | `{store}/customer/{customer_id}` | the customer's one-hour order window (orders per minute) |
//!
//! Every key starts with the store id, the key of the input partition. A key's changelog
//! record must land in that store's partition, so that the instance owning the store restores
//! it: the runtime partitions a changelog record by the part of its state key before the
//! first `/` (for the other processors that is the whole key).
//!
//! **Deduplication memory** (order ids and posting ids): at most [`SEEN_RETENTION_MS`] (7 days)
//! and at most [`SEEN_MAX_PER_STORE`] (100 000) ids per store, the oldest forgotten first.
//! Duplicates come from retries (a store resending, ingest or a producer retrying, a book
//! replaying after a crash) that arrive seconds or minutes apart; ingest also answers a
//! repeated external order id from its own store. Decisions ignore an id older than the
//! retention even before it is swept, so the outcome does not depend on when sweeps ran.

use super::window::Window;
use crate::core::Millis;
use jivapay_domain::{OrderId, StoreId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use uuid::Uuid;

/// How long an order or posting id is remembered.
pub const SEEN_RETENTION_MS: Millis = 7 * 24 * 3600 * 1000;
/// How many order ids (and, separately, posting ids) one store remembers at most.
pub const SEEN_MAX_PER_STORE: usize = 100_000;

/// A changelog key of fraud's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    Store(StoreId),
    Order(StoreId, OrderId),
    Posting(StoreId, Uuid),
    Customer(StoreId, String),
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateKey::Store(s) => write!(f, "{s}"),
            StateKey::Order(s, o) => write!(f, "{s}/order/{o}"),
            StateKey::Posting(s, p) => write!(f, "{s}/posting/{p}"),
            StateKey::Customer(s, c) => write!(f, "{s}/customer/{c}"),
        }
    }
}

impl StateKey {
    /// The store whose partition owns the key.
    pub fn store_id(&self) -> StoreId {
        match self {
            StateKey::Store(s)
            | StateKey::Order(s, _)
            | StateKey::Posting(s, _)
            | StateKey::Customer(s, _) => *s,
        }
    }

    /// The inverse of `Display`. A customer id may itself contain `/`: only the first two
    /// separators count.
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.splitn(3, '/');
        let store: StoreId = parts.next()?.parse().ok()?;
        match (parts.next(), parts.next()) {
            (None, _) => Some(StateKey::Store(store)),
            (Some("order"), Some(id)) => Some(StateKey::Order(store, id.parse().ok()?)),
            (Some("posting"), Some(id)) => {
                Some(StateKey::Posting(store, Uuid::parse_str(id).ok()?))
            }
            (Some("customer"), Some(id)) => Some(StateKey::Customer(store, id.to_string())),
            _ => None,
        }
    }
}

/// Ids seen recently (orders or postings) with the time they were first seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    by_id: HashMap<Uuid, Millis>,
    by_time: BTreeSet<(Millis, Uuid)>,
}

impl Seen {
    /// True when `id` was seen within the retention before `now`.
    pub fn contains(&self, id: Uuid, now: Millis) -> bool {
        self.by_id
            .get(&id)
            .is_some_and(|at| now.saturating_sub(*at) < SEEN_RETENTION_MS)
    }

    /// Remembers `id` as seen at `at`; returns the ids forgotten to stay within the bound.
    pub fn insert(&mut self, id: Uuid, at: Millis) -> Vec<Uuid> {
        if let Some(old) = self.by_id.insert(id, at) {
            self.by_time.remove(&(old, id));
        }
        self.by_time.insert((at, id));
        let mut forgotten = Vec::new();
        while self.by_id.len() > SEEN_MAX_PER_STORE {
            let Some((_, old_id)) = self.by_time.pop_first() else {
                break;
            };
            self.by_id.remove(&old_id);
            forgotten.push(old_id);
        }
        forgotten
    }

    /// Forgets the ids past the retention at `now`; returns them.
    pub fn expire(&mut self, now: Millis) -> Vec<Uuid> {
        let mut forgotten = Vec::new();
        while let Some((at, id)) = self.by_time.first().copied() {
            if now.saturating_sub(at) < SEEN_RETENTION_MS {
                break;
            }
            self.by_time.pop_first();
            self.by_id.remove(&id);
            forgotten.push(id);
        }
        forgotten
    }

    pub fn get(&self, id: Uuid) -> Option<Millis> {
        self.by_id.get(&id).copied()
    }

    pub fn remove(&mut self, id: Uuid) {
        if let Some(at) = self.by_id.remove(&id) {
            self.by_time.remove(&(at, id));
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// A store's money in one currency, as its postings say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreBalance {
    /// Free to spend: credits − debits − holds still open.
    pub available: Decimal,
    /// Reserved by holds not yet released or captured.
    pub held: Decimal,
}

/// Everything fraud knows about one store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreState {
    pub orders_last_minute: Window,
    pub balances: BTreeMap<String, StoreBalance>,
    pub seen_orders: Seen,
    pub seen_postings: Seen,
    pub customers: HashMap<String, Window>,
}

/// The value of the `{store}` key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    pub orders_last_minute: Window,
    pub balances: BTreeMap<String, StoreBalance>,
}

/// The value of an `/order/` or `/posting/` key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeenRecord {
    pub at: Millis,
}

impl StoreState {
    pub fn is_empty(&self) -> bool {
        self.orders_last_minute.is_empty()
            && self.balances.is_empty()
            && self.seen_orders.is_empty()
            && self.seen_postings.is_empty()
            && self.customers.is_empty()
    }

    /// The serialized value of `key` (which must name this store), `None` when it is gone.
    pub fn value_of(&self, key: &StateKey) -> Option<Vec<u8>> {
        let json = match key {
            StateKey::Store(_) => {
                if self.orders_last_minute.is_empty() && self.balances.is_empty() {
                    return None;
                }
                serde_json::to_vec(&StoreRecord {
                    orders_last_minute: self.orders_last_minute.clone(),
                    balances: self.balances.clone(),
                })
            }
            StateKey::Order(_, id) => serde_json::to_vec(&SeenRecord {
                at: self.seen_orders.get(id.0)?,
            }),
            StateKey::Posting(_, id) => serde_json::to_vec(&SeenRecord {
                at: self.seen_postings.get(*id)?,
            }),
            StateKey::Customer(_, id) => serde_json::to_vec(self.customers.get(id)?),
        };
        // Serializing these plain structs to JSON cannot fail (no maps with non-string keys).
        json.ok()
    }

    /// Loads `key`'s value from the changelog (`None`: delete it). An unreadable value is
    /// logged and skipped: losing one entry of memory beats refusing to start.
    pub fn restore(&mut self, key: &StateKey, value: Option<&[u8]>) {
        fn read<T: for<'de> Deserialize<'de>>(key: &StateKey, bytes: &[u8]) -> Option<T> {
            serde_json::from_slice(bytes)
                .map_err(|e| tracing::warn!(%key, error = %e, "unreadable fraud state; skipped"))
                .ok()
        }
        match (key, value) {
            (StateKey::Store(_), None) => {
                self.orders_last_minute = Window::default();
                self.balances.clear();
            }
            (StateKey::Store(_), Some(bytes)) => {
                if let Some(r) = read::<StoreRecord>(key, bytes) {
                    self.orders_last_minute = r.orders_last_minute;
                    self.balances = r.balances;
                }
            }
            (StateKey::Order(_, id), None) => self.seen_orders.remove(id.0),
            (StateKey::Order(_, id), Some(bytes)) => {
                if let Some(r) = read::<SeenRecord>(key, bytes) {
                    self.seen_orders.insert(id.0, r.at);
                }
            }
            (StateKey::Posting(_, id), None) => self.seen_postings.remove(*id),
            (StateKey::Posting(_, id), Some(bytes)) => {
                if let Some(r) = read::<SeenRecord>(key, bytes) {
                    self.seen_postings.insert(*id, r.at);
                }
            }
            (StateKey::Customer(_, id), None) => {
                self.customers.remove(id);
            }
            (StateKey::Customer(_, id), Some(bytes)) => {
                if let Some(w) = read::<Window>(key, bytes) {
                    self.customers.insert(id.clone(), w);
                }
            }
        }
    }
}
