//! [`FraudProcessor`]: applies requested orders and store postings to the per-store state.

use super::rules::{self, Velocity, Verdict};
use super::settings::FraudSettings;
use super::state::{StateKey, StoreBalance, StoreState};
use super::window::{CUSTOMER_SPAN, STORE_SPAN};
use crate::core::{derived_id, pool, Emit, Input, MasterData, Millis, Processor};
use jivapay_domain::StoreId;
use jivapay_schemas::records::{
    OrderEvent, OrderEventKind, OrderRequested, OrderScreened, OrderStatus, PostingKind,
    StorePosting,
};
use rust_decimal::Decimal;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// How often `tick` sweeps expired memory (dedup ids, idle customers).
const SWEEP_INTERVAL_MS: Millis = 60_000;

/// How far before `now` an order may count in the velocity windows (its request time, when
/// worked off from a backlog). Bounding it lets a sweep drop a customer's window once no
/// later order can count it, so decisions never depend on when sweeps ran.
pub const MAX_LATENESS_MS: Millis = 3_600_000;

pub struct FraudProcessor {
    master: Arc<dyn MasterData>,
    stores: HashMap<StoreId, StoreState>,
    dirty: BTreeSet<StateKey>,
    last_sweep_at: Option<Millis>,
}

impl FraudProcessor {
    pub fn new(master: Arc<dyn MasterData>) -> Self {
        Self {
            master,
            stores: HashMap::new(),
            dirty: BTreeSet::new(),
            last_sweep_at: None,
        }
    }

    /// The store's balance in `currency` as its postings say (zero when it has none).
    pub fn store_balance(&self, store_id: StoreId, currency: &str) -> StoreBalance {
        self.stores
            .get(&store_id)
            .and_then(|s| s.balances.get(currency).copied())
            .unwrap_or_default()
    }

    fn requested(&mut self, order: OrderRequested, now: Millis) -> Vec<Emit> {
        let store_id = order.store_id;
        let state = self.stores.entry(store_id).or_default();
        if state.seen_orders.contains(order.order_id.0, now) {
            return Vec::new();
        }
        for forgotten in state.seen_orders.insert(order.order_id.0, now) {
            self.dirty
                .insert(StateKey::Order(store_id, forgotten.into()));
        }
        self.dirty.insert(StateKey::Order(store_id, order.order_id));

        let store = self.master.store(store_id);
        let settings = FraudSettings::load(self.master.as_ref());
        let verdict = match rules::admission(&order, store.as_ref()) {
            Some(refused) => refused,
            None => {
                // An order counts from when ingest accepted it, so that a backlog worked off
                // after an outage does not look like a burst; never later than now, and never
                // earlier than the lateness the sweeps allow for.
                let at = order
                    .requested_at
                    .max(now.saturating_sub(MAX_LATENESS_MS))
                    .min(now);
                let store_earlier = state.orders_last_minute.count_then_record(at, STORE_SPAN);
                self.dirty.insert(StateKey::Store(store_id));
                let customer_earlier = order.customer_id.as_ref().map(|customer| {
                    self.dirty
                        .insert(StateKey::Customer(store_id, customer.clone()));
                    state
                        .customers
                        .entry(customer.clone())
                        .or_default()
                        .count_then_record(at, CUSTOMER_SPAN)
                });
                rules::assess(
                    &order,
                    &settings,
                    Velocity {
                        store_earlier,
                        customer_earlier,
                    },
                )
            }
        };
        let store_callback_url = store.and_then(|s| s.callback_url);
        outputs(order, verdict, &settings, store_callback_url, now)
    }

    fn posting(&mut self, posting: StorePosting, now: Millis) {
        let store_id = posting.store_id;
        let state = self.stores.entry(store_id).or_default();
        if state.seen_postings.contains(posting.posting_id, now) {
            return;
        }
        for forgotten in state.seen_postings.insert(posting.posting_id, now) {
            self.dirty.insert(StateKey::Posting(store_id, forgotten));
        }
        self.dirty
            .insert(StateKey::Posting(store_id, posting.posting_id));
        let balance = state.balances.entry(posting.currency.clone()).or_default();
        // The book that sent the posting checked it; fraud only mirrors it. A balance may
        // therefore go negative here only if an upstream book is wrong, and pay-outs will
        // refuse to spend from it.
        match posted(*balance, posting.kind, posting.amount) {
            Some(next) => *balance = next,
            None => tracing::error!(
                posting_id = %posting.posting_id, amount = %posting.amount,
                "store posting overflows the balance; not applied"
            ),
        }
        self.dirty.insert(StateKey::Store(store_id));
    }

    fn sweep(&mut self, now: Millis) {
        let dirty = &mut self.dirty;
        self.stores.retain(|store_id, state| {
            for id in state.seen_orders.expire(now) {
                dirty.insert(StateKey::Order(*store_id, id.into()));
            }
            for id in state.seen_postings.expire(now) {
                dirty.insert(StateKey::Posting(*store_id, id));
            }
            state.customers.retain(|customer, window| {
                let keep = !window.is_stale(now, CUSTOMER_SPAN, MAX_LATENESS_MS);
                if !keep {
                    dirty.insert(StateKey::Customer(*store_id, customer.clone()));
                }
                keep
            });
            !state.is_empty()
        });
    }
}

/// `balance` after one posting; `None` if it would leave `Decimal`'s range.
fn posted(balance: StoreBalance, kind: PostingKind, amount: Decimal) -> Option<StoreBalance> {
    let StoreBalance { available, held } = balance;
    let (available, held) = match kind {
        PostingKind::Credit => (available.checked_add(amount)?, held),
        PostingKind::Debit => (available.checked_sub(amount)?, held),
        PostingKind::Hold => (available.checked_sub(amount)?, held.checked_add(amount)?),
        PostingKind::Release => (available.checked_add(amount)?, held.checked_sub(amount)?),
        // The hold becomes a debit: the money leaves for good.
        PostingKind::Capture => (available, held.checked_sub(amount)?),
    };
    Some(StoreBalance { available, held })
}

/// The event (always) and the screened order (when accepted) for a verdict.
fn outputs(
    order: OrderRequested,
    verdict: Verdict,
    settings: &FraudSettings,
    store_callback_url: Option<String>,
    now: Millis,
) -> Vec<Emit> {
    let (kind, status, name, reason, detail) = match verdict {
        Verdict::Accept => (
            OrderEventKind::Created,
            OrderStatus::Created,
            "created",
            None,
            None,
        ),
        Verdict::Review { reason, detail } => (
            OrderEventKind::Review,
            OrderStatus::Review,
            "review",
            Some(reason.to_string()),
            Some(detail),
        ),
        Verdict::Reject { reason, detail } => (
            OrderEventKind::Rejected,
            OrderStatus::Rejected,
            "rejected",
            Some(reason.to_string()),
            Some(detail),
        ),
    };
    let accepted = kind == OrderEventKind::Created;
    // What the gateway promised the merchant (on the request since v2; older requests get
    // the window from the request time), so the trader book's timer states the same instant
    // and a replay screened later states it too.
    let expires_at = accepted.then(|| {
        order.expires_at.unwrap_or_else(|| {
            order
                .requested_at
                .saturating_add(settings.payment_window_secs.saturating_mul(1000))
        })
    });
    let event = OrderEvent {
        event_id: derived_id(&[order.order_id.0.as_bytes(), name.as_bytes()]),
        order_id: order.order_id,
        store_id: order.store_id,
        external_order_id: order.external_order_id.clone(),
        direction: order.direction,
        sequence: 1,
        kind,
        status,
        previous_status: None,
        fiat_amount: order.fiat_amount,
        fiat_currency: order.fiat_currency.clone(),
        payment_method: order.payment_method.clone(),
        rate: None,
        crypto_amount: None,
        store_commission: None,
        trader_reward: None,
        trader_id: None,
        requisite_id: None,
        customer_id: order.customer_id.clone(),
        // The order's own URL, else the store's: the callback sink needs no stores table.
        callback_url: order.callback_url.clone().or(store_callback_url),
        payment_token: Some(order.payment_token.clone()),
        expires_at,
        reason_code: reason,
        reason_detail: detail,
        candidates: Vec::new(),
        occurred_at: now,
    };
    let mut out = vec![Emit::Event(event)];
    if let (true, Some(fiat_amount)) = (accepted, order.fiat_amount) {
        out.push(Emit::Screened(OrderScreened {
            order_id: order.order_id,
            store_id: order.store_id,
            pool: pool(&order.fiat_currency, &order.payment_method),
            external_order_id: order.external_order_id,
            direction: order.direction,
            fiat_amount,
            fiat_currency: order.fiat_currency,
            payment_method: order.payment_method,
            customer_id: order.customer_id,
            excluded_traders: Vec::new(),
            attempt: 0,
            expires_at,
            refusals: Vec::new(),
            requested_at: order.requested_at,
            screened_at: now,
        }));
    }
    out
}

impl Processor for FraudProcessor {
    fn name(&self) -> &'static str {
        "fraud"
    }

    fn apply(&mut self, input: Input, now: Millis) -> Vec<Emit> {
        match input {
            Input::Requested(order) => self.requested(order, now),
            Input::StorePosting(posting) => {
                self.posting(posting, now);
                Vec::new()
            }
            other => {
                tracing::warn!(topic = other.topic(), "fraud ignores this input");
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
            .map(|key| {
                let value = self
                    .stores
                    .get(&key.store_id())
                    .and_then(|s| s.value_of(&key));
                (key.to_string(), value)
            })
            .collect()
    }

    fn restore(&mut self, key: &str, state: Option<&[u8]>) {
        let Some(parsed) = StateKey::parse(key) else {
            tracing::warn!(key, "unknown fraud state key; skipped");
            return;
        };
        let store_id = parsed.store_id();
        let store = self.stores.entry(store_id).or_default();
        store.restore(&parsed, state);
        if store.is_empty() {
            self.stores.remove(&store_id);
        }
    }
}
