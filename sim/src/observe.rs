//! What the sinks and the people see: the order events (the projection), the ledger built
//! from the transfers (the ledger sink: each transfer once, by id) and the postings.
//!
//! They read every record as it is appended and deduplicate by id, as the sinks do. On the
//! way they check what can be checked at once: one id always carries the same bytes, every
//! transfer sums to zero per currency, no order gets two different final answers, no two
//! events of an order share a sequence number.
//!
//! One holder per order (issue 14, item 3; `sinks/src/projection/fold.rs`): the trader named
//! by the first event of an order that names one holds it; another trader's events (a second
//! assignment, which commissions has his book cancel) are kept apart as the order's history,
//! and his event ids (derived from order and kind, so the holder's too) are told apart by
//! trader.

use jivapay_domain::{OrderId, StoreId, TraderId};
use jivapay_schemas::records::{
    AccountKind, AccountOwnerKind, LedgerTransfer, OrderEvent, OrderEventKind, OrderStatus,
    PostingKind, StorePosting, TraderPosting, TransferKind,
};
use jivapay_schemas::topics::*;
use jivapay_schemas::SchemaRegistry;
use rust_decimal::Decimal;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use uuid::Uuid;

/// What an order's event says, kept small (a run holds one per event).
#[derive(Debug, Clone, PartialEq)]
pub struct EventInfo {
    pub event_id: Uuid,
    pub kind: OrderEventKind,
    pub status: OrderStatus,
    pub previous: Option<OrderStatus>,
    pub trader: Option<TraderId>,
    pub expires_at: Option<i64>,
    pub occurred_at: i64,
    pub reason: Option<String>,
    /// Sent by a fenced owner (a late write).
    pub late: bool,
}

/// An order as the projection knows it.
#[derive(Debug, Default)]
pub struct OrderView {
    /// Its holder's events and those naming no trader, by sequence number.
    pub events: BTreeMap<i32, EventInfo>,
    /// The trader of the first event that names one.
    pub holder: Option<TraderId>,
    /// Other traders' events: a second assignment and what became of it.
    pub others: Vec<EventInfo>,
    pub store: Option<StoreId>,
}

impl OrderView {
    /// The status of its newest event.
    pub fn status(&self) -> Option<OrderStatus> {
        self.events.values().next_back().map(|e| e.status)
    }

    pub fn terminal(&self) -> Option<OrderStatus> {
        self.events
            .values()
            .map(|e| e.status)
            .find(|s| s.is_terminal())
    }
}

/// Something a person can react to.
#[derive(Debug, Clone)]
pub enum Seen {
    Assigned {
        order: OrderId,
        trader: TraderId,
        expires_at: Option<i64>,
    },
    ClientConfirmed {
        order: OrderId,
        trader: TraderId,
        expires_at: Option<i64>,
    },
}

/// An account of the ledger: owner kind, owner, kind, currency.
pub type Account = (AccountOwnerKind, Option<Uuid>, AccountKind, String);

#[derive(Debug, Default)]
pub struct Observer {
    pub orders: HashMap<OrderId, OrderView>,
    /// Per id (event, transfer, posting), a digest of its bytes, and whether that version
    /// was a late write (a fenced owner's).
    ids: HashMap<Uuid, (u64, bool)>,
    /// Per transfer or posting id, what it said (for a report).
    notes: HashMap<Uuid, String>,
    pub balances: HashMap<Account, Decimal>,
    /// Pay-in transfers per order.
    pub settled: HashMap<OrderId, u32>,
    /// Store credit postings per order.
    pub credits: HashMap<OrderId, u32>,
    /// Deposits journaled per trader.
    pub deposits: HashMap<TraderId, Decimal>,
    pub transfers: u64,
    pub duplicates: u64,
    /// Orders a second trader assigned too (commissions has his book cancel it).
    pub second_holders: u64,
    /// Late writes kept as the first version of their id, and late writes ignored.
    pub late_kept: u64,
    pub late_ignored: u64,
    /// Whether the record being read is a late write.
    late: bool,
}

fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// A finding: the invariant and what broke it.
pub type Finding = (&'static str, String);

impl Observer {
    /// Whether `id` is new; a known id with other bytes is a finding.
    /// Whether `id` is new (what a reader that deduplicates by id keeps). Two versions of one
    /// id that both counted is a finding; a late write that differs is only counted (the
    /// runtime's design accepts it: principle 4, "ignored once a newer one is seen").
    fn first(
        &mut self,
        id: Uuid,
        payload: &[u8],
        what: &str,
        note: Option<String>,
    ) -> Result<bool, Finding> {
        let d = digest(payload);
        let late = self.late;
        let Some(&(old, old_late)) = self.ids.get(&id) else {
            self.ids.insert(id, (d, late));
            if let Some(note) = note {
                self.notes.insert(id, note);
            }
            self.late_kept += u64::from(late);
            return Ok(true);
        };
        match (old == d, late || old_late) {
            (true, _) => {
                self.duplicates += 1;
                Ok(false)
            }
            (false, true) => {
                self.late_ignored += 1;
                Ok(false)
            }
            (false, false) => Err((
                "one_id_one_content",
                format!(
                    "{what} {id} was written twice with different bytes (first: {}; then: {})",
                    self.notes.get(&id).map_or("—", String::as_str),
                    note.as_deref().unwrap_or("—")
                ),
            )),
        }
    }

    /// Reads one appended record of an observed topic.
    pub fn on_record(
        &mut self,
        registry: &SchemaRegistry,
        topic: &str,
        payload: &[u8],
        late: bool,
        seen: &mut Vec<Seen>,
    ) -> Result<(), Finding> {
        self.late = late;
        let undecodable = |e: jivapay_schemas::CodecError| ("decodable", format!("{topic}: {e}"));
        match topic {
            ORDERS_EVENTS => {
                let event: OrderEvent = registry.decode(payload).map_err(undecodable)?;
                self.on_event(event, payload, seen)
            }
            LEDGER_TRANSFERS => {
                let transfer: LedgerTransfer = registry.decode(payload).map_err(undecodable)?;
                self.on_transfer(transfer, payload)
            }
            STORE_POSTINGS => {
                let posting: StorePosting = registry.decode(payload).map_err(undecodable)?;
                let note = format!(
                    "{:?} {} for order {:?} at {}",
                    posting.kind, posting.amount, posting.order_id, posting.posted_at
                );
                if self.first(posting.posting_id, payload, "store posting", Some(note))?
                    && posting.kind == PostingKind::Credit
                {
                    if let Some(order) = posting.order_id {
                        *self.credits.entry(order).or_default() += 1;
                    }
                }
                Ok(())
            }
            TRADER_POSTINGS => {
                let posting: TraderPosting = registry.decode(payload).map_err(undecodable)?;
                let note = format!(
                    "{:?} {} for order {:?} at {}",
                    posting.kind, posting.amount, posting.order_id, posting.posted_at
                );
                self.first(posting.posting_id, payload, "trader posting", Some(note))
                    .map(drop)
            }
            _ => Ok(()),
        }
    }

    fn on_event(
        &mut self,
        event: OrderEvent,
        payload: &[u8],
        seen: &mut Vec<Seen>,
    ) -> Result<(), Finding> {
        // A second trader's events carry the holder's ids: one content per id and trader.
        let key = match event.trader_id {
            Some(trader) => Uuid::new_v5(&event.event_id, trader.0.as_bytes()),
            None => event.event_id,
        };
        match self.first(key, payload, "event", None) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err((name, detail)) => {
                let first = self.orders.get(&event.order_id).and_then(|v| {
                    v.events
                        .values()
                        .chain(&v.others)
                        .find(|e| e.event_id == event.event_id && e.trader == event.trader_id)
                });
                return Err((
                    name,
                    format!(
                        "{detail}: order {}, first {first:?}, then {:?} {:?} by trader {:?} at {} (sequence {})",
                        event.order_id, event.kind, event.status, event.trader_id, event.occurred_at, event.sequence
                    ),
                ));
            }
        }
        let order = event.order_id;
        let view = self.orders.entry(order).or_default();
        view.store = Some(event.store_id);
        let info = EventInfo {
            event_id: event.event_id,
            kind: event.kind,
            status: event.status,
            previous: event.previous_status,
            trader: event.trader_id,
            expires_at: event.expires_at,
            occurred_at: event.occurred_at,
            reason: event.reason_code.clone(),
            late: self.late,
        };
        if let Some(trader) = event.trader_id {
            if view.holder.is_none() {
                view.holder = Some(trader);
            }
            if view.holder != Some(trader) {
                self.second_holders += u64::from(event.kind == OrderEventKind::Assigned);
                view.others.push(info);
                return Ok(());
            }
        }
        let late = if self.late {
            " (this one a late write of a fenced owner)"
        } else {
            ""
        };
        if event.status.is_terminal() {
            if let Some(first) = view.terminal().filter(|s| *s != event.status) {
                return Err((
                    "one_final_state",
                    format!(
                        "order {order} ended {} and then {}{late}",
                        first.as_str(),
                        event.status.as_str()
                    ),
                ));
            }
        }
        if let Some(other) = view.events.get(&event.sequence) {
            return Err((
                "event_chain",
                format!(
                    "order {order} has two events of sequence {}: {other:?} and then {:?} by trader {:?} at {}{late}",
                    event.sequence, event.kind, event.trader_id, event.occurred_at
                ),
            ));
        }
        match (event.kind, event.trader_id) {
            (OrderEventKind::Assigned, Some(trader)) => seen.push(Seen::Assigned {
                order,
                trader,
                expires_at: event.expires_at,
            }),
            (OrderEventKind::ClientConfirmed, Some(trader)) => seen.push(Seen::ClientConfirmed {
                order,
                trader,
                expires_at: event.expires_at,
            }),
            _ => {}
        }
        view.events.insert(event.sequence, info);
        Ok(())
    }

    fn on_transfer(&mut self, transfer: LedgerTransfer, payload: &[u8]) -> Result<(), Finding> {
        let note = format!(
            "{:?} of order {:?} at {}: {}",
            transfer.kind,
            transfer.order_id,
            transfer.created_at,
            transfer.description.as_deref().unwrap_or("")
        );
        if !self.first(transfer.transfer_id, payload, "transfer", Some(note))? {
            return Ok(());
        }
        if !transfer.is_balanced() {
            return Err((
                "transfers_balanced",
                format!(
                    "transfer {} does not sum to zero per currency: {:?}",
                    transfer.transfer_id, transfer.entries
                ),
            ));
        }
        self.transfers += 1;
        for entry in &transfer.entries {
            *self
                .balances
                .entry((
                    entry.owner_kind,
                    entry.owner_id,
                    entry.account_kind,
                    entry.currency.clone(),
                ))
                .or_default() += entry.amount;
            if transfer.kind == TransferKind::Deposit
                && entry.owner_kind == AccountOwnerKind::Trader
            {
                if let Some(trader) = entry.owner_id {
                    *self.deposits.entry(TraderId(trader)).or_default() += entry.amount;
                }
            }
        }
        if transfer.kind == TransferKind::PayIn {
            if let Some(order) = transfer.order_id {
                *self.settled.entry(order).or_default() += 1;
            }
        }
        Ok(())
    }

    /// The ledger balance of one account (zero if it has no entry).
    pub fn balance(
        &self,
        owner: AccountOwnerKind,
        id: Option<Uuid>,
        kind: AccountKind,
        currency: &str,
    ) -> Decimal {
        self.balances
            .get(&(owner, id, kind, currency.to_owned()))
            .copied()
            .unwrap_or_default()
    }
}
