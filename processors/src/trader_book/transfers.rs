//! The ledger transfers of deposits and withdrawals (`ledger.transfers`, key = transfer id).
//!
//! The book is the single writer of a trader's deposit, so it is the one that announces to the
//! ledger what it applied: the PostgreSQL ledger (written by the ledger sink) must hold the same
//! balance as the book. Account model, shared with commissions: a trader's deposit in the
//! ledger is the sum of his AVAILABLE and HOLD accounts (a pay-in debits HOLD by C and credits
//! AVAILABLE with the reward); money enters from and leaves to the outside world through the
//! EXTERNAL SETTLEMENT account, which has no owner.

use super::handlers::DEPOSIT_CURRENCY;
use crate::core::{derived_id, Millis};
use jivapay_schemas::records::{
    AccountKind, AccountOwnerKind, LedgerEntry, LedgerTransfer, TransferKind,
};
use rust_decimal::Decimal;
use uuid::Uuid;

/// Which way a deposit command moved the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepositMove {
    /// From the outside world onto the trader's deposit.
    In,
    /// From the trader's deposit back to the outside world.
    Out,
}

impl DepositMove {
    /// The last part of the transfer id and its description.
    pub fn name(self) -> &'static str {
        match self {
            DepositMove::In => "deposit",
            DepositMove::Out => "withdrawal",
        }
    }

    fn kind(self) -> TransferKind {
        match self {
            DepositMove::In => TransferKind::Deposit,
            DepositMove::Out => TransferKind::Withdrawal,
        }
    }
}

/// The transfer id of the deposit or withdrawal `command_id`: a replayed command gives the same
/// id, which the ledger sink writes once.
pub fn transfer_id(command_id: Uuid, movement: DepositMove) -> Uuid {
    derived_id(&[command_id.as_bytes(), movement.name().as_bytes()])
}

/// The balanced transfer of an applied deposit or withdrawal of `amount` (positive, at most
/// 6 places: the handler checked both).
pub fn deposit_transfer(
    trader_id: Uuid,
    command_id: Uuid,
    movement: DepositMove,
    amount: Decimal,
    now: Millis,
) -> LedgerTransfer {
    let entry = |owner_kind, owner_id, account_kind, amount| LedgerEntry {
        owner_kind,
        owner_id,
        account_kind,
        currency: DEPOSIT_CURRENCY.into(),
        amount,
    };
    let outside = |amount| {
        entry(
            AccountOwnerKind::External,
            None,
            AccountKind::Settlement,
            amount,
        )
    };
    let trader = |amount| {
        entry(
            AccountOwnerKind::Trader,
            Some(trader_id),
            AccountKind::Available,
            amount,
        )
    };
    // The debited leg first, as in every transfer of the ledger.
    let entries = match movement {
        DepositMove::In => vec![outside(-amount), trader(amount)],
        DepositMove::Out => vec![trader(-amount), outside(amount)],
    };
    LedgerTransfer {
        transfer_id: transfer_id(command_id, movement),
        kind: movement.kind(),
        order_id: None,
        description: Some(movement.name().into()),
        entries,
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn both_directions_are_balanced_mirrors() {
        let trader = Uuid::from_u128(1);
        let command = Uuid::from_u128(2);
        let amount = Decimal::from_str("12.345678").unwrap_or_default();
        let d = deposit_transfer(trader, command, DepositMove::In, amount, 7);
        let w = deposit_transfer(trader, command, DepositMove::Out, amount, 7);
        assert!(d.is_balanced() && w.is_balanced());
        assert_eq!(d.kind, TransferKind::Deposit);
        assert_eq!(w.kind, TransferKind::Withdrawal);
        assert_ne!(d.transfer_id, w.transfer_id);
        assert_eq!(d.transfer_id, derived_id(&[command.as_bytes(), b"deposit"]));
        assert_eq!(
            w.transfer_id,
            derived_id(&[command.as_bytes(), b"withdrawal"])
        );
        let trader_leg = |t: &LedgerTransfer| {
            t.entries
                .iter()
                .filter(|e| e.owner_kind == AccountOwnerKind::Trader)
                .map(|e| (e.owner_id, e.account_kind, e.amount))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            trader_leg(&d),
            vec![(Some(trader), AccountKind::Available, amount)]
        );
        assert_eq!(
            trader_leg(&w),
            vec![(Some(trader), AccountKind::Available, -amount)]
        );
        for e in d.entries.iter().chain(&w.entries) {
            assert_eq!(e.currency, "USDT");
            if e.owner_kind == AccountOwnerKind::External {
                assert_eq!(
                    (e.owner_id, e.account_kind),
                    (None, AccountKind::Settlement)
                );
            }
        }
    }
}
