//! The records the trader book writes: order events, refusals back to the router, capacity.

use super::state::OpenOrder;
use crate::core::{derived_id, Millis};
use jivapay_domain::{FiatAmount, UsdtAmount};
use jivapay_schemas::records::{
    CandidateDecision, CandidateOutcome, OrderEvent, OrderRouted, OrderScreened, OrderStatus,
};
use uuid::Uuid;

/// Marks the traders the router already excluded in the candidates of an assignment: their
/// own books refused the order (the reason travels with the router's final event).
pub const REFUSED_BY_TRADER_BOOK: &str = "refused_by_trader_book";

/// Optional reason on an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reason {
    pub code: Option<&'static str>,
    pub detail: Option<String>,
}

impl Reason {
    pub fn none() -> Reason {
        Reason::default()
    }

    pub fn code(code: &'static str, detail: Option<String>) -> Reason {
        Reason {
            code: Some(code),
            detail,
        }
    }
}

/// The event announcing that `order` entered its current state. Its id depends only on the
/// order and the kind, so a replayed event is recognised downstream.
pub fn order_event(
    trader_id: Uuid,
    order_id: Uuid,
    order: &OpenOrder,
    previous: Option<OrderStatus>,
    reason: Reason,
    candidates: Vec<CandidateDecision>,
    now: Millis,
) -> OrderEvent {
    let kind = order.state.event_kind();
    OrderEvent {
        event_id: derived_id(&[order_id.as_bytes(), kind.as_str().as_bytes()]),
        order_id: order_id.into(),
        store_id: order.store_id.into(),
        external_order_id: order.external_order_id.clone(),
        direction: order.direction,
        sequence: order.sequence,
        kind,
        status: order.state.status(),
        previous_status: previous,
        fiat_amount: Some(FiatAmount::rounded(order.fiat_amount)),
        fiat_currency: order.fiat_currency.clone(),
        payment_method: order.payment_method.clone(),
        rate: Some(order.rate),
        crypto_amount: Some(UsdtAmount::rounded(order.crypto_amount)),
        store_commission: None,
        trader_reward: None,
        trader_id: Some(trader_id.into()),
        requisite_id: Some(order.requisite_id.into()),
        customer_id: None,
        callback_url: None,
        payment_token: None,
        expires_at: order.deadline,
        reason_code: reason.code.map(str::to_string),
        reason_detail: reason.detail,
        candidates,
        occurred_at: now,
    }
}

/// The candidates of an assignment: what the router considered (since v2), else the traders
/// whose books refused before, then this one.
pub fn assignment_candidates(routed: &OrderRouted) -> Vec<CandidateDecision> {
    if !routed.candidates.is_empty() {
        return routed.candidates.clone();
    }
    routed
        .excluded_traders
        .iter()
        .filter(|t| **t != routed.trader_id)
        .map(|t| CandidateDecision {
            trader_id: *t,
            requisite_id: None,
            outcome: CandidateOutcome::Refused,
            reason_code: Some(REFUSED_BY_TRADER_BOOK.to_string()),
        })
        .chain(std::iter::once(CandidateDecision {
            trader_id: routed.trader_id,
            requisite_id: Some(routed.requisite_id),
            outcome: CandidateOutcome::Chosen,
            reason_code: None,
        }))
        .collect()
}

/// A refused order goes back to its pool's router with this trader excluded and the refusal,
/// with its reason, added to the ones before.
pub fn screened_back(routed: &OrderRouted, reason: &str, now: Millis) -> OrderScreened {
    let mut excluded = routed.excluded_traders.clone();
    if !excluded.contains(&routed.trader_id) {
        excluded.push(routed.trader_id);
    }
    let mut refusals: Vec<CandidateDecision> = routed
        .candidates
        .iter()
        .filter(|c| c.outcome == CandidateOutcome::Refused)
        .cloned()
        .collect();
    refusals.push(CandidateDecision {
        trader_id: routed.trader_id,
        requisite_id: Some(routed.requisite_id),
        outcome: CandidateOutcome::Refused,
        reason_code: Some(reason.to_string()),
    });
    OrderScreened {
        order_id: routed.order_id,
        store_id: routed.store_id,
        external_order_id: routed.external_order_id.clone(),
        direction: routed.direction,
        pool: routed.pool.clone(),
        fiat_amount: routed.fiat_amount,
        fiat_currency: routed.fiat_currency.clone(),
        payment_method: routed.payment_method.clone(),
        // `orders.routed` does not carry it; fraud, the only stage that uses it, is behind.
        customer_id: None,
        excluded_traders: excluded,
        attempt: routed.attempt.saturating_add(1),
        expires_at: routed.expires_at,
        refusals,
        requested_at: routed.requested_at,
        screened_at: now,
    }
}
