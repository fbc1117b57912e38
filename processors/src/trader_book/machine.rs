//! The life of an order inside the trader book, as an explicit state machine.
//!
//! The book only knows an order from its assignment on; the states before (created, review,
//! no requisite) belong to fraud and the router. Every change of state goes through
//! [`transition`], so an illegal command (confirming a cancelled order, cancelling a paid one)
//! is refused in one place and leaves the state untouched.

use jivapay_schemas::records::{OrderEventKind, OrderStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    /// A requisite is reserved and the deposit held; the customer has the payment window.
    Assigned,
    /// The customer says he has paid; the trader has the confirmation timeout.
    ClientConfirmed,
    /// Customer and trader disagree (or the trader did not answer); support decides later.
    Disputed,
    Completed,
    Cancelled,
    Expired,
}

/// What can happen to an order: a command from a person or a timer of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderAction {
    /// The customer says he has paid (payment page).
    ClientConfirmed,
    /// The trader says the money arrived.
    TraderConfirmed,
    /// The trader says no money arrived although the customer says he paid.
    ReportNonPayment,
    /// Staff or the customer give up before anyone paid.
    Cancel,
    /// Timer: the customer did not confirm within the payment window.
    PaymentWindowElapsed,
    /// Timer: the trader did not confirm within the timeout after the customer confirmed.
    ConfirmationTimedOut,
}

/// A command that is not allowed in the order's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: OrderState,
    pub action: OrderAction,
}

impl OrderState {
    pub const ALL: [OrderState; 6] = [
        OrderState::Assigned,
        OrderState::ClientConfirmed,
        OrderState::Disputed,
        OrderState::Completed,
        OrderState::Cancelled,
        OrderState::Expired,
    ];

    /// Terminal for the book: the order leaves its state after the event (a completed
    /// order's hold stays until commissions captures it).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderState::Completed | OrderState::Cancelled | OrderState::Expired
        )
    }

    /// Entering this state gives the held deposit back: nobody paid, so nothing is owed.
    /// Completed keeps it for the capture; Disputed keeps it until support decides.
    pub fn releases_hold(self) -> bool {
        matches!(self, OrderState::Cancelled | OrderState::Expired)
    }

    pub fn status(self) -> OrderStatus {
        match self {
            OrderState::Assigned => OrderStatus::Assigned,
            OrderState::ClientConfirmed => OrderStatus::ClientConfirmed,
            OrderState::Disputed => OrderStatus::Disputed,
            OrderState::Completed => OrderStatus::Completed,
            OrderState::Cancelled => OrderStatus::Cancelled,
            OrderState::Expired => OrderStatus::Expired,
        }
    }

    /// The event announcing that the order entered this state.
    pub fn event_kind(self) -> OrderEventKind {
        match self {
            OrderState::Assigned => OrderEventKind::Assigned,
            OrderState::ClientConfirmed => OrderEventKind::ClientConfirmed,
            OrderState::Disputed => OrderEventKind::Disputed,
            OrderState::Completed => OrderEventKind::Completed,
            OrderState::Cancelled => OrderEventKind::Cancelled,
            OrderState::Expired => OrderEventKind::Expired,
        }
    }
}

impl OrderAction {
    pub const ALL: [OrderAction; 6] = [
        OrderAction::ClientConfirmed,
        OrderAction::TraderConfirmed,
        OrderAction::ReportNonPayment,
        OrderAction::Cancel,
        OrderAction::PaymentWindowElapsed,
        OrderAction::ConfirmationTimedOut,
    ];
}

/// The one table of legal moves. Anything not listed is refused.
///
/// A dispute needs two contradicting claims, so the trader can report non-payment only after
/// the customer claimed payment; before that the payment window settles the order by itself
/// (expiry releases the hold). Cancelling is possible only while nobody claims to have paid.
pub fn transition(from: OrderState, action: OrderAction) -> Result<OrderState, IllegalTransition> {
    use OrderAction as A;
    use OrderState as S;
    match (from, action) {
        (S::Assigned, A::ClientConfirmed) => Ok(S::ClientConfirmed),
        (S::Assigned | S::ClientConfirmed, A::TraderConfirmed) => Ok(S::Completed),
        (S::ClientConfirmed, A::ReportNonPayment) => Ok(S::Disputed),
        (S::Assigned, A::Cancel) => Ok(S::Cancelled),
        (S::Assigned, A::PaymentWindowElapsed) => Ok(S::Expired),
        (S::ClientConfirmed, A::ConfirmationTimedOut) => Ok(S::Disputed),
        _ => Err(IllegalTransition { from, action }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderAction as A;
    use OrderState as S;

    /// Every legal move, written out independently of `transition`'s match.
    const LEGAL: &[(S, A, S)] = &[
        (S::Assigned, A::ClientConfirmed, S::ClientConfirmed),
        (S::Assigned, A::TraderConfirmed, S::Completed),
        (S::Assigned, A::Cancel, S::Cancelled),
        (S::Assigned, A::PaymentWindowElapsed, S::Expired),
        (S::ClientConfirmed, A::TraderConfirmed, S::Completed),
        (S::ClientConfirmed, A::ReportNonPayment, S::Disputed),
        (S::ClientConfirmed, A::ConfirmationTimedOut, S::Disputed),
    ];

    #[test]
    fn every_pair_of_state_and_action_is_legal_exactly_when_listed() {
        let mut checked = 0;
        for from in S::ALL {
            for action in A::ALL {
                let expected = LEGAL
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == action)
                    .map(|(_, _, to)| *to);
                match (transition(from, action), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from:?} + {action:?}"),
                    (Err(e), None) => assert_eq!(e, IllegalTransition { from, action }),
                    (got, want) => panic!("{from:?} + {action:?}: got {got:?}, want {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 36);
    }

    #[test]
    fn terminal_states_accept_nothing() {
        for from in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for action in A::ALL {
                assert!(transition(from, action).is_err(), "{from:?} + {action:?}");
            }
        }
    }

    #[test]
    fn disputed_waits_for_support() {
        for action in A::ALL {
            assert!(transition(S::Disputed, action).is_err(), "{action:?}");
        }
    }

    #[test]
    fn specific_illegal_moves_are_refused() {
        assert!(
            transition(S::ClientConfirmed, A::Cancel).is_err(),
            "paid orders cannot be cancelled"
        );
        assert!(transition(S::Assigned, A::ReportNonPayment).is_err());
        assert!(transition(S::Assigned, A::ConfirmationTimedOut).is_err());
        assert!(transition(S::ClientConfirmed, A::ClientConfirmed).is_err());
        assert!(transition(S::ClientConfirmed, A::PaymentWindowElapsed).is_err());
        assert!(transition(S::Completed, A::TraderConfirmed).is_err());
        assert!(transition(S::Cancelled, A::ClientConfirmed).is_err());
        assert!(transition(S::Expired, A::TraderConfirmed).is_err());
    }

    #[test]
    fn only_cancel_and_expiry_release_the_hold() {
        let releasing: Vec<S> = S::ALL.into_iter().filter(|s| s.releases_hold()).collect();
        assert_eq!(releasing, vec![S::Cancelled, S::Expired]);
        assert!(S::Completed.is_terminal() && !S::Completed.releases_hold());
        assert!(!S::Disputed.is_terminal() && !S::Disputed.releases_hold());
    }

    #[test]
    fn states_map_to_their_status_and_event() {
        for s in S::ALL {
            let status = serde_json::to_string(&s.status()).unwrap_or_default();
            let kind = serde_json::to_string(&s.event_kind()).unwrap_or_default();
            let own = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(status, own);
            assert_eq!(kind, own);
        }
    }
}
