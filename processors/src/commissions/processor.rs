//! [`CommissionsProcessor`]: remembers an order from ASSIGNED, settles it on COMPLETED.
//!
//! One holder per order (issue 14, item 3): the trader of the first ASSIGNED read for an order
//! holds it — its events are read in one partition's order, so every replay picks the same
//! one. Should a second trader's book ever assign the order too (a duplicate no stage caught),
//! that trader is told to cancel it, which releases his hold; his events change nothing here,
//! and the holder's completion is settled as usual.

use super::split::{pay_in_split, PayInSplit};
use crate::core::{derived_id, Emit, Input, MasterData, Millis, Processor};
use jivapay_domain::{OrderId, RequisiteId, StoreId, TraderId, UsdtAmount};
use jivapay_schemas::records::{
    AccountKind, AccountOwnerKind, Direction, LedgerEntry, LedgerTransfer, OrderEvent, OrderStatus,
    PostingKind, StorePosting, TraderCommand, TraderCommandKind, TraderPosting, TransferKind,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// How long a closed order is remembered, so that its events replayed by an upstream stage
/// settle nothing twice. Replays arrive within minutes of the original.
pub const CLOSED_RETENTION_MS: Millis = 7 * 24 * 3_600_000;

/// How often `tick` forgets closed orders past their retention.
const SWEEP_INTERVAL_MS: Millis = 60_000;

/// The settlement currency.
const USDT: &str = "USDT";

/// What ASSIGNED fixed for the order's settlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Assignment {
    store_id: StoreId,
    trader_id: TraderId,
    requisite_id: Option<RequisiteId>,
    external_order_id: String,
    payment_method: String,
    rate: Option<Decimal>,
    crypto_amount: UsdtAmount,
    /// s_in, percent, from the store's commissions at assignment.
    store_percent: Decimal,
    /// t_in, percent, from the trader's commissions at assignment.
    trader_percent: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OrderState {
    Assigned(Assignment),
    /// Settled or ended: later events of the order are replays and change nothing (but a
    /// second holder's ASSIGNED, which is still released).
    Closed {
        at: Millis,
        /// The holder; `None` in records written before holders were kept, or for an order
        /// never assigned.
        #[serde(default)]
        trader_id: Option<TraderId>,
    },
}

impl OrderState {
    fn holder(&self) -> Option<TraderId> {
        match self {
            OrderState::Assigned(a) => Some(a.trader_id),
            OrderState::Closed { trader_id, .. } => *trader_id,
        }
    }
}

/// The reason a second holder's book is given for the cancellation.
pub const DUPLICATE_ASSIGNMENT: &str = "duplicate_assignment";

pub struct CommissionsProcessor {
    master: Arc<dyn MasterData>,
    orders: HashMap<OrderId, OrderState>,
    dirty: BTreeSet<OrderId>,
    last_sweep_at: Option<Millis>,
}

impl CommissionsProcessor {
    pub fn new(master: Arc<dyn MasterData>) -> Self {
        Self {
            master,
            orders: HashMap::new(),
            dirty: BTreeSet::new(),
            last_sweep_at: None,
        }
    }

    fn event(&mut self, event: OrderEvent, now: Millis) -> Vec<Emit> {
        if event.direction != Direction::PayIn {
            return Vec::new();
        }
        let order_id = event.order_id;
        let known = self.orders.get(&order_id);
        let holder = known.and_then(OrderState::holder);
        if let (Some(holder), Some(trader)) = (holder, event.trader_id) {
            if trader != holder {
                return release_second_holder(&event, trader);
            }
        }
        if matches!(known, Some(OrderState::Closed { .. })) {
            return Vec::new();
        }
        match event.status {
            OrderStatus::Assigned => {
                if known.is_none() {
                    if let Some(assignment) = self.snapshot(&event) {
                        self.set(order_id, OrderState::Assigned(assignment));
                    }
                }
                Vec::new()
            }
            OrderStatus::Completed => {
                let assignment = match known {
                    Some(OrderState::Assigned(a)) => Some(a.clone()),
                    _ => {
                        // ASSIGNED was never seen (state lost, or consumption started after
                        // it): settle from the event at today's commissions rather than leave
                        // the trader's hold and the store's money stuck. Logged: an operator
                        // should know the snapshot was missing.
                        tracing::warn!(%order_id, "COMPLETED without ASSIGNED; settling at current commissions");
                        self.snapshot(&event)
                    }
                };
                let Some(assignment) = assignment else {
                    return Vec::new();
                };
                let out = settle(order_id, &assignment, now);
                let trader_id = Some(assignment.trader_id);
                self.set(order_id, OrderState::Closed { at: now, trader_id });
                out
            }
            OrderStatus::Cancelled
            | OrderStatus::Expired
            | OrderStatus::Rejected
            | OrderStatus::NoRequisite
            | OrderStatus::Failed
            | OrderStatus::Review => {
                // Nothing to settle: the trader book released its hold. Only an order we hold
                // state for needs the marker (the others were never assigned).
                if known.is_some() {
                    let trader_id = holder;
                    self.set(order_id, OrderState::Closed { at: now, trader_id });
                }
                Vec::new()
            }
            OrderStatus::Created
            | OrderStatus::ClientConfirmed
            | OrderStatus::TraderPaid
            | OrderStatus::Disputed => Vec::new(),
        }
    }

    fn set(&mut self, order_id: OrderId, state: OrderState) {
        self.orders.insert(order_id, state);
        self.dirty.insert(order_id);
    }

    /// What the settlement needs, from an event that names the trader and the amounts, with
    /// the commission percentages the store and the trader have now.
    fn snapshot(&self, event: &OrderEvent) -> Option<Assignment> {
        let (Some(trader_id), Some(crypto_amount)) = (event.trader_id, event.crypto_amount) else {
            tracing::warn!(order_id = %event.order_id, "assignment without trader or crypto amount; ignored");
            return None;
        };
        let method = &event.payment_method;
        let store_percent = self
            .master
            .store(event.store_id)
            .and_then(|s| {
                s.commissions
                    .into_iter()
                    .find(|c| &c.payment_method == method && c.direction == Direction::PayIn)
            })
            .map(|c| c.percent);
        let trader_percent = self
            .master
            .trader(trader_id)
            .and_then(|t| {
                t.commissions
                    .into_iter()
                    .find(|c| &c.payment_method == method && c.direction == Direction::PayIn)
            })
            .map(|c| c.percent);
        // The admin API requires both before a store or trader can take pay-ins of a method;
        // a missing one is a configuration gap, settled as 0 % and logged.
        if store_percent.is_none() || trader_percent.is_none() {
            tracing::warn!(
                order_id = %event.order_id, store_percent = ?store_percent, trader_percent = ?trader_percent,
                "commission missing at assignment; 0 % used"
            );
        }
        Some(Assignment {
            store_id: event.store_id,
            trader_id,
            requisite_id: event.requisite_id,
            external_order_id: event.external_order_id.clone(),
            payment_method: method.clone(),
            rate: event.rate,
            crypto_amount,
            store_percent: store_percent.unwrap_or_default(),
            trader_percent: trader_percent.unwrap_or_default(),
        })
    }

    fn sweep(&mut self, now: Millis) {
        let dirty = &mut self.dirty;
        self.orders.retain(|order_id, state| match state {
            OrderState::Closed { at, .. } if now.saturating_sub(*at) >= CLOSED_RETENTION_MS => {
                dirty.insert(*order_id);
                false
            }
            _ => true,
        });
    }
}

/// An event of a trader who is not the order's holder: his ASSIGNED is answered with a
/// cancellation for his book (releasing his hold); anything else of his changes nothing.
fn release_second_holder(event: &OrderEvent, trader_id: TraderId) -> Vec<Emit> {
    if event.status != OrderStatus::Assigned {
        return Vec::new();
    }
    let order_id = event.order_id;
    tracing::error!(%order_id, %trader_id, "a second trader assigned a held order; released");
    vec![Emit::Command(TraderCommand {
        command_id: derived_id(&[
            order_id.0.as_bytes(),
            trader_id.0.as_bytes(),
            DUPLICATE_ASSIGNMENT.as_bytes(),
        ]),
        trader_id,
        order_id: Some(order_id),
        kind: TraderCommandKind::CancelOrder,
        amount: None,
        resolution: None,
        receipt_key: None,
        actor_id: None,
        actor_role: Some("system".into()),
        reason: Some(DUPLICATE_ASSIGNMENT.into()),
        // From the cause, not the clock: a replay sends the same command.
        issued_at: event.occurred_at,
    })]
}

/// The transfer and the postings of a completed pay-in. Zero legs are left out (the ledger
/// refuses zero entries); C itself is never zero for an assigned order.
fn settle(order_id: OrderId, a: &Assignment, now: Millis) -> Vec<Emit> {
    let Some(split) = pay_in_split(a.crypto_amount.value(), a.store_percent, a.trader_percent)
    else {
        tracing::error!(%order_id, crypto_amount = %a.crypto_amount, "pay-in amount out of range; not settled");
        return Vec::new();
    };
    if split.crypto_amount <= Decimal::ZERO {
        tracing::error!(%order_id, crypto_amount = %a.crypto_amount, "pay-in without a positive amount; not settled");
        return Vec::new();
    }
    let transfer_id = derived_id(&[order_id.0.as_bytes(), b"pay_in"]);
    let posting_id = |leg: &str| derived_id(&[order_id.0.as_bytes(), b"pay_in", leg.as_bytes()]);
    let mut out = vec![Emit::Transfer(transfer(
        order_id,
        transfer_id,
        a,
        &split,
        now,
    ))];
    let trader_posting = |leg: &str, kind: PostingKind, amount: Decimal| {
        Emit::TraderPosting(TraderPosting {
            posting_id: posting_id(leg),
            trader_id: a.trader_id,
            order_id: Some(order_id),
            transfer_id: Some(transfer_id),
            kind,
            currency: USDT.into(),
            amount,
            posted_at: now,
        })
    };
    out.push(trader_posting(
        "trader_capture",
        PostingKind::Capture,
        split.crypto_amount,
    ));
    if !split.trader_reward.is_zero() {
        out.push(trader_posting(
            "trader_reward",
            PostingKind::Credit,
            split.trader_reward,
        ));
    }
    if !split.store_share.is_zero() {
        out.push(Emit::StorePosting(StorePosting {
            posting_id: posting_id("store_credit"),
            store_id: a.store_id,
            order_id: Some(order_id),
            transfer_id: Some(transfer_id),
            kind: PostingKind::Credit,
            currency: USDT.into(),
            amount: split.store_share,
            posted_at: now,
        }));
    }
    out
}

fn transfer(
    order_id: OrderId,
    transfer_id: Uuid,
    a: &Assignment,
    split: &PayInSplit,
    now: Millis,
) -> LedgerTransfer {
    let entry = |owner_kind, owner_id, account_kind, amount| LedgerEntry {
        owner_kind,
        owner_id,
        account_kind,
        currency: USDT.into(),
        amount,
    };
    let entries = [
        entry(
            AccountOwnerKind::Trader,
            Some(a.trader_id.into()),
            AccountKind::Hold,
            -split.crypto_amount,
        ),
        entry(
            AccountOwnerKind::Trader,
            Some(a.trader_id.into()),
            AccountKind::Available,
            split.trader_reward,
        ),
        entry(
            AccountOwnerKind::Store,
            Some(a.store_id.into()),
            AccountKind::Available,
            split.store_share,
        ),
        entry(
            AccountOwnerKind::Platform,
            None,
            AccountKind::Fees,
            split.platform_fee,
        ),
    ]
    .into_iter()
    .filter(|e| !e.amount.is_zero())
    .collect();
    LedgerTransfer {
        transfer_id,
        kind: TransferKind::PayIn,
        order_id: Some(order_id),
        description: Some(format!(
            "pay-in {} via {}: store {}%, trader {}%",
            a.external_order_id, a.payment_method, a.store_percent, a.trader_percent
        )),
        entries,
        created_at: now,
    }
}

impl Processor for CommissionsProcessor {
    fn name(&self) -> &'static str {
        "commissions"
    }

    fn apply(&mut self, input: Input, now: Millis) -> Vec<Emit> {
        match input {
            Input::Event(event) => self.event(event, now),
            other => {
                tracing::warn!(topic = other.topic(), "commissions ignores this input");
                Vec::new()
            }
        }
    }

    fn tick(&mut self, now: Millis) -> Vec<Emit> {
        if self
            .last_sweep_at
            .is_none_or(|last| now.saturating_sub(last) >= SWEEP_INTERVAL_MS)
        {
            self.sweep(now);
            self.last_sweep_at = Some(now);
        }
        Vec::new()
    }

    fn take_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|order_id| {
                // Plain structs with decimal strings: serializing cannot fail.
                let value = self
                    .orders
                    .get(&order_id)
                    .and_then(|s| serde_json::to_vec(s).ok());
                (order_id.to_string(), value)
            })
            .collect()
    }

    fn restore(&mut self, key: &str, state: Option<&[u8]>) {
        let Ok(order_id) = key.parse::<OrderId>() else {
            tracing::warn!(key, "commissions state key is not an order id; skipped");
            return;
        };
        match state.map(serde_json::from_slice::<OrderState>) {
            None => {
                self.orders.remove(&order_id);
            }
            Some(Ok(s)) => {
                self.orders.insert(order_id, s);
            }
            Some(Err(e)) => {
                tracing::error!(key, error = %e, "unreadable commissions state; skipped");
            }
        }
    }
}
