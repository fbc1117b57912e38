//! The contract between the streaming runtime and the pure processors.
//!
//! A processor never touches Kafka: the runtime decodes each input record into an [`Input`],
//! calls [`Processor::apply`] with the time from its [`Clock`], and produces the returned
//! [`Emit`]s. State changes are reported by key through [`Processor::take_changes`] and written
//! by the runtime to the processor's changelog together with the input offsets they cover; on
//! (re)assignment the runtime feeds the changelog back through [`Processor::restore`].
//! Master data (traders, stores, rates, settings, capacity) is read through [`MasterData`],
//! which tests implement in memory.
//!
//! Determinism: for the same inputs, state and `now`, a processor returns the same outputs with
//! the same ids — that is what makes replays after a crash harmless.

use jivapay_domain::{IdPurpose, StoreId, TraderId};
use jivapay_schemas::records::{
    LedgerTransfer, OrderEvent, OrderRequested, OrderRouted, OrderScreened, Rate, Setting, Store,
    StorePosting, Trader, TraderCapacity, TraderCommand, TraderPosting,
};
use jivapay_schemas::topics::*;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A decoded input record.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Requested(OrderRequested),
    Screened(OrderScreened),
    Routed(OrderRouted),
    Command(TraderCommand),
    Event(OrderEvent),
    StorePosting(StorePosting),
    TraderPosting(TraderPosting),
}

impl Input {
    /// The topic this kind of record is read from.
    pub fn topic(&self) -> &'static str {
        match self {
            Input::Requested(_) => ORDERS_REQUESTED,
            Input::Screened(_) => ORDERS_SCREENED,
            Input::Routed(_) => ORDERS_ROUTED,
            Input::Command(_) => TRADER_COMMANDS,
            Input::Event(_) => ORDERS_EVENTS,
            Input::StorePosting(_) => STORE_POSTINGS,
            Input::TraderPosting(_) => TRADER_POSTINGS,
        }
    }
}

/// A record to produce. Its topic and key follow from its kind (see the topology).
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    /// → `orders.screened`, key = pool.
    Screened(OrderScreened),
    /// → `orders.routed`, key = trader id.
    Routed(OrderRouted),
    /// → `orders.events`, key = order id.
    Event(OrderEvent),
    /// → `ledger.transfers`, key = order id (or transfer id without an order).
    Transfer(LedgerTransfer),
    /// → `store.postings`, key = store id.
    StorePosting(StorePosting),
    /// → `trader.postings`, key = trader id.
    TraderPosting(TraderPosting),
    /// → `trader.capacity`, key = trader id.
    Capacity(TraderCapacity),
    /// → `trader.commands`, key = trader id: commissions releasing an order's second holder.
    Command(TraderCommand),
}

impl Emit {
    pub fn topic(&self) -> &'static str {
        match self {
            Emit::Screened(_) => ORDERS_SCREENED,
            Emit::Routed(_) => ORDERS_ROUTED,
            Emit::Event(_) => ORDERS_EVENTS,
            Emit::Transfer(_) => LEDGER_TRANSFERS,
            Emit::StorePosting(_) => STORE_POSTINGS,
            Emit::TraderPosting(_) => TRADER_POSTINGS,
            Emit::Capacity(_) => TRADER_CAPACITY,
            Emit::Command(_) => TRADER_COMMANDS,
        }
    }

    pub fn key(&self) -> String {
        match self {
            Emit::Screened(r) => r.pool.clone(),
            Emit::Routed(r) => r.trader_id.to_string(),
            Emit::Event(r) => r.order_id.to_string(),
            Emit::Transfer(r) => r.order_id.map_or(r.transfer_id, Uuid::from).to_string(),
            Emit::StorePosting(r) => r.store_id.to_string(),
            Emit::TraderPosting(r) => r.trader_id.to_string(),
            Emit::Capacity(r) => r.trader_id.to_string(),
            Emit::Command(r) => r.trader_id.to_string(),
        }
    }
}

/// A pure stream processor (fraud, router, trader book, commissions).
pub trait Processor: Send + 'static {
    /// Used in consumer group ids, changelog names and metrics.
    fn name(&self) -> &'static str;

    /// Applies one input record at time `now`; returns what to produce.
    fn apply(&mut self, input: Input, now: Millis) -> Vec<Emit>;

    /// Fires the timers due at `now` (payment windows, confirmation timeouts). The runtime calls
    /// it regularly; processors without timers return nothing.
    fn tick(&mut self, now: Millis) -> Vec<Emit>;

    /// Called once after each batch of inputs (and the tick): what to produce for the batch
    /// as a whole. The trader book publishes each touched trader's capacity here, once per
    /// batch instead of once per input (the record lists every open amount, so per input
    /// it cost O(open orders) to build, send and read for every order).
    fn finish_batch(&mut self, _now: Millis) -> Vec<Emit> {
        Vec::new()
    }

    /// State keys changed since the last call, each with its serialized state (`None`: the key
    /// is gone). The runtime writes them to the changelog.
    fn take_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)>;

    /// Loads one key's state from the changelog (`None`: deleted), before any input is applied.
    fn restore(&mut self, key: &str, state: Option<&[u8]>);

    /// From now on, fire timers only up to `watermark` (ARCHITECTURE principle 8): every
    /// command accepted before it has been applied. For processors whose kind names a
    /// marked input (`ProcessorKind::time_markers`) the runtime calls it with `Millis::MIN`
    /// after a restore, then for every time marker it reads. Never called: timers fire at `now`.
    fn hold_timers_until(&mut self, _watermark: Millis) {}

    /// The earliest deadline of a timer still to fire, if any: the runtime writes time markers
    /// only while a timer waits for one.
    fn next_deadline(&self) -> Option<Millis> {
        None
    }
}

/// Master data as the processors see it: compacted topics held as tables.
pub trait MasterData: Send + Sync + 'static {
    fn trader(&self, trader_id: TraderId) -> Option<Trader>;
    /// Every trader with at least one requisite in `pool` (`FIAT:method`).
    fn traders_in_pool(&self, pool: &str) -> Vec<Trader>;
    fn store(&self, store_id: StoreId) -> Option<Store>;
    fn rate(&self, fiat_currency: &str) -> Option<Rate>;
    fn setting(&self, key: &str) -> Option<Setting>;
    fn capacity(&self, trader_id: TraderId) -> Option<TraderCapacity>;
}

/// The time processors run on: the system clock in production, a hand-moved one in tests.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock tests move by hand.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<Mutex<Millis>>);

impl ManualClock {
    pub fn at(now: Millis) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    pub fn advance(&self, by_ms: Millis) {
        *self.0.lock().expect("clock lock") += by_ms;
    }

    pub fn set(&self, now: Millis) {
        *self.0.lock().expect("clock lock") = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        *self.0.lock().expect("clock lock")
    }
}

/// Master data held in memory (tests, simulations).
#[derive(Default)]
pub struct InMemoryMasterData {
    pub traders: Mutex<std::collections::HashMap<TraderId, Trader>>,
    pub stores: Mutex<std::collections::HashMap<StoreId, Store>>,
    pub rates: Mutex<std::collections::HashMap<String, Rate>>,
    pub settings: Mutex<std::collections::HashMap<String, Setting>>,
    pub capacities: Mutex<std::collections::HashMap<TraderId, TraderCapacity>>,
}

impl MasterData for InMemoryMasterData {
    fn trader(&self, trader_id: TraderId) -> Option<Trader> {
        self.traders.lock().expect("lock").get(&trader_id).cloned()
    }

    fn traders_in_pool(&self, pool: &str) -> Vec<Trader> {
        let mut traders: Vec<Trader> = self
            .traders
            .lock()
            .expect("lock")
            .values()
            .filter(|t| {
                t.requisites
                    .iter()
                    .any(|r| format!("{}:{}", r.fiat_currency, r.payment_method) == pool)
            })
            .cloned()
            .collect();
        traders.sort_by_key(|t| t.trader_id);
        traders
    }

    fn store(&self, store_id: StoreId) -> Option<Store> {
        self.stores.lock().expect("lock").get(&store_id).cloned()
    }

    fn rate(&self, fiat_currency: &str) -> Option<Rate> {
        self.rates.lock().expect("lock").get(fiat_currency).cloned()
    }

    fn setting(&self, key: &str) -> Option<Setting> {
        self.settings.lock().expect("lock").get(key).cloned()
    }

    fn capacity(&self, trader_id: TraderId) -> Option<TraderCapacity> {
        self.capacities
            .lock()
            .expect("lock")
            .get(&trader_id)
            .cloned()
    }
}

/// The pool an order belongs to: fiat currency and payment method, `RUB:sbp`.
pub fn pool(fiat_currency: &str, payment_method: &str) -> String {
    format!("{fiat_currency}:{payment_method}")
}

/// A deterministic id from its cause: the same cause always gives the same id, so a replayed
/// record is recognised downstream. `parts` name the cause, e.g. `[order_id, "assigned"]`.
/// The namespace is [`IdPurpose::ProcessorOutput`] (events, transfers, postings).
pub fn derived_id(parts: &[&[u8]]) -> Uuid {
    let mut name = Vec::new();
    for part in parts {
        name.extend_from_slice(&(part.len() as u32).to_be_bytes());
        name.extend_from_slice(part);
    }
    IdPurpose::ProcessorOutput.id(&name)
}
