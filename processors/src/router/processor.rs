//! [`RouterProcessor`]: proposes one requisite per screened order, or gives up with the list
//! of every requisite considered.

use super::eligibility::{self, crypto_amount, Request, SkipReason};
use crate::core::{derived_id, pool, Emit, Input, MasterData, Millis, Processor};
use jivapay_domain::{RequisiteId, TraderId, UsdtAmount};
use jivapay_schemas::records::{
    CandidateDecision, CandidateOutcome, OrderEvent, OrderEventKind, OrderRouted, OrderScreened,
    OrderStatus,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Proposals per order before the router gives up (`too_many_refusals`): every refusal costs a
/// round trip through a trader book, and a customer is waiting on the payment page.
pub const MAX_ATTEMPTS: i32 = 20;

/// The reason code of a trader whose book refused the order (as the trader book names it).
const REFUSED_BY_TRADER_BOOK: &str = "refused_by_trader_book";

/// The reason code of an eligible requisite that another one preceded (higher priority, or
/// its turn came earlier).
const NOT_NEXT_IN_TURN: &str = "not_next_in_turn";

/// What the router remembers of one pool: a turn counter and, per requisite, the turn it was
/// last proposed at. A counter rather than a time: many orders share a millisecond.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PoolState {
    next_turn: u64,
    last_turn: BTreeMap<RequisiteId, u64>,
}

pub struct RouterProcessor {
    master: Arc<dyn MasterData>,
    pools: HashMap<String, PoolState>,
    dirty: BTreeSet<String>,
}

/// One requisite of the pool and what eligibility said about it.
struct Considered {
    priority: i32,
    trader_id: TraderId,
    requisite_id: RequisiteId,
    verdict: Result<(), SkipReason>,
}

impl RouterProcessor {
    pub fn new(master: Arc<dyn MasterData>) -> Self {
        Self {
            master,
            pools: HashMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    fn route(&mut self, order: OrderScreened, now: Millis) -> Vec<Emit> {
        if order.attempt >= MAX_ATTEMPTS {
            let refused = refusals(&order);
            let detail = format!("{} proposals refused by trader books", order.attempt);
            return vec![no_requisite(
                &order,
                None,
                "too_many_refusals",
                detail,
                refused,
                now,
            )];
        }
        let rate = self
            .master
            .rate(&order.fiat_currency)
            .map(|r| r.rate)
            .filter(|r| *r > Decimal::ZERO);
        let Some(rate) = rate else {
            let detail = format!("no exchange rate for {}", order.fiat_currency);
            return vec![no_requisite(
                &order,
                None,
                "no_rate",
                detail,
                Vec::new(),
                now,
            )];
        };
        let crypto = crypto_amount(order.fiat_amount, rate).filter(|c| *c > UsdtAmount::ZERO);
        let Some(crypto) = crypto else {
            let detail = format!("{} at rate {rate} is no USDT amount", order.fiat_amount);
            return vec![no_requisite(
                &order,
                Some((rate, None)),
                "amount_too_small",
                detail,
                Vec::new(),
                now,
            )];
        };

        let considered = self.consider(&order, crypto, now);
        let state = self.pools.entry(order.pool.clone()).or_default();
        let chosen = considered
            .iter()
            .filter(|c| c.verdict.is_ok())
            .min_by_key(|c| {
                // Never proposed (None) sorts before any turn: a new requisite goes first.
                let last_turn = state.last_turn.get(&c.requisite_id).copied();
                (c.priority, last_turn, c.requisite_id)
            });
        let Some(chosen) = chosen else {
            let skipped = considered.len();
            let candidates = decisions(&order, &considered, None);
            let (reason, detail) = if skipped == 0 {
                (
                    "no_requisite_in_pool",
                    format!("no requisite in pool {}", order.pool),
                )
            } else {
                (
                    "no_eligible_requisite",
                    format!("none of {skipped} requisites can take the order"),
                )
            };
            let rated = Some((rate, Some(crypto)));
            return vec![no_requisite(&order, rated, reason, detail, candidates, now)];
        };

        let (trader_id, requisite_id) = (chosen.trader_id, chosen.requisite_id);
        let candidates = decisions(&order, &considered, Some(requisite_id));
        state.last_turn.insert(requisite_id, state.next_turn);
        state.next_turn += 1;
        // Forget requisites that left the pool, so the record does not grow forever.
        let present: BTreeSet<RequisiteId> = considered.iter().map(|c| c.requisite_id).collect();
        state.last_turn.retain(|id, _| present.contains(id));
        self.dirty.insert(order.pool.clone());
        vec![Emit::Routed(OrderRouted {
            order_id: order.order_id,
            store_id: order.store_id,
            external_order_id: order.external_order_id,
            direction: order.direction,
            pool: order.pool,
            trader_id,
            requisite_id,
            fiat_amount: order.fiat_amount,
            fiat_currency: order.fiat_currency,
            payment_method: order.payment_method,
            rate,
            crypto_amount: crypto,
            excluded_traders: order.excluded_traders,
            attempt: order.attempt,
            expires_at: order.expires_at,
            candidates,
            requested_at: order.requested_at,
            routed_at: now,
        })]
    }

    /// Every requisite of the order's pool, with eligibility's verdict, in a stable order.
    fn consider(&self, order: &OrderScreened, crypto: UsdtAmount, now: Millis) -> Vec<Considered> {
        let request = Request {
            direction: order.direction,
            fiat_amount: order.fiat_amount,
            crypto_amount: crypto,
            excluded_traders: &order.excluded_traders,
            now,
        };
        let mut considered = Vec::new();
        for trader in self.master.traders_in_pool(&order.pool) {
            let capacity = self.master.capacity(trader.trader_id);
            for requisite in trader
                .requisites
                .iter()
                .filter(|r| pool(&r.fiat_currency, &r.payment_method) == order.pool)
            {
                considered.push(Considered {
                    priority: trader.priority,
                    trader_id: trader.trader_id,
                    requisite_id: requisite.requisite_id,
                    verdict: eligibility::check(&trader, requisite, capacity.as_ref(), &request),
                });
            }
        }
        considered.sort_by_key(|c| (c.trader_id, c.requisite_id));
        considered
    }
}

/// The trader books' refusals so far, each with its reason. Records written before v2 carry
/// only the excluded traders, so those get the generic reason.
fn refusals(order: &OrderScreened) -> Vec<CandidateDecision> {
    if !order.refusals.is_empty() {
        return order.refusals.clone();
    }
    order
        .excluded_traders
        .iter()
        .map(|trader_id| CandidateDecision {
            trader_id: *trader_id,
            requisite_id: None,
            outcome: CandidateOutcome::Refused,
            reason_code: Some(REFUSED_BY_TRADER_BOOK.into()),
        })
        .collect()
}

/// What support reads on the order's event: every requisite of the pool once — the chosen
/// one, the eligible ones that were not next in turn, the ones a trader book refused with the
/// book's reason, the skipped ones with the first rule they failed — then the refusals of
/// traders no longer in the pool.
fn decisions(
    order: &OrderScreened,
    considered: &[Considered],
    chosen: Option<RequisiteId>,
) -> Vec<CandidateDecision> {
    let refusals = refusals(order);
    let mut out: Vec<CandidateDecision> = considered
        .iter()
        .map(|c| {
            let refusal = refusals
                .iter()
                .find(|r| r.requisite_id == Some(c.requisite_id));
            let (outcome, reason_code) = match (c.verdict, refusal) {
                (Ok(()), _) if Some(c.requisite_id) == chosen => (CandidateOutcome::Chosen, None),
                (Ok(()), _) => (CandidateOutcome::Skipped, Some(NOT_NEXT_IN_TURN.into())),
                (Err(SkipReason::ExcludedAfterRefusal), Some(r)) => {
                    (CandidateOutcome::Refused, r.reason_code.clone())
                }
                (Err(reason), _) => (CandidateOutcome::Skipped, Some(reason.code().into())),
            };
            CandidateDecision {
                trader_id: c.trader_id,
                requisite_id: Some(c.requisite_id),
                outcome,
                reason_code,
            }
        })
        .collect();
    let gone = refusals
        .into_iter()
        .filter(|r| !considered.iter().any(|c| c.trader_id == r.trader_id));
    out.extend(gone);
    out
}

/// The final NO_REQUISITE event. `rated`: the rate and crypto amount, when known.
fn no_requisite(
    order: &OrderScreened,
    rated: Option<(Decimal, Option<UsdtAmount>)>,
    reason: &str,
    detail: String,
    candidates: Vec<CandidateDecision>,
    now: Millis,
) -> Emit {
    Emit::Event(OrderEvent {
        event_id: derived_id(&[order.order_id.0.as_bytes(), b"no_requisite"]),
        order_id: order.order_id,
        store_id: order.store_id,
        external_order_id: order.external_order_id.clone(),
        direction: order.direction,
        // CREATED (fraud) is 1; an order that never got a requisite has no event in between.
        sequence: 2,
        kind: OrderEventKind::NoRequisite,
        status: OrderStatus::NoRequisite,
        previous_status: Some(OrderStatus::Created),
        fiat_amount: Some(order.fiat_amount),
        fiat_currency: order.fiat_currency.clone(),
        payment_method: order.payment_method.clone(),
        rate: rated.map(|(rate, _)| rate),
        crypto_amount: rated.and_then(|(_, crypto)| crypto),
        store_commission: None,
        trader_reward: None,
        trader_id: None,
        requisite_id: None,
        customer_id: order.customer_id.clone(),
        callback_url: None,
        payment_token: None,
        expires_at: None,
        reason_code: Some(reason.to_string()),
        reason_detail: Some(detail),
        candidates,
        occurred_at: now,
    })
}

impl Processor for RouterProcessor {
    fn name(&self) -> &'static str {
        "router"
    }

    fn apply(&mut self, input: Input, now: Millis) -> Vec<Emit> {
        match input {
            Input::Screened(order) => self.route(order, now),
            other => {
                tracing::warn!(topic = other.topic(), "router ignores this input");
                Vec::new()
            }
        }
    }

    fn tick(&mut self, _now: Millis) -> Vec<Emit> {
        Vec::new()
    }

    fn take_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|pool| {
                // A map with UUID keys and integers serializes to JSON without fail.
                let value = self
                    .pools
                    .get(&pool)
                    .and_then(|s| serde_json::to_vec(s).ok());
                (pool, value)
            })
            .collect()
    }

    fn restore(&mut self, key: &str, state: Option<&[u8]>) {
        match state.map(serde_json::from_slice::<PoolState>) {
            None => {
                self.pools.remove(key);
            }
            Some(Ok(pool_state)) => {
                self.pools.insert(key.to_string(), pool_state);
            }
            Some(Err(e)) => {
                // Losing the round-robin memory only changes who goes next.
                tracing::warn!(key, error = %e, "unreadable router state; skipped");
            }
        }
    }
}
