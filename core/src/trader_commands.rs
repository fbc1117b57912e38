//! Building the commands the HTTP edges send to the trader book (`trader.commands`, key = the
//! trader, who owns the order's state and decides). A command id is derived from its cause, so
//! a repeated click is one command; the trader book remembers the ids it has seen. Sending is
//! `jivapay_platform::trader_commands::send` (it needs the producer).

use jivapay_domain::IdPurpose;
use jivapay_schemas::records::{TraderCommand, TraderCommandKind};
use uuid::Uuid;

/// The customer's "I have paid" from the payment page, with the key of the uploaded receipt.
pub fn client_confirmed(
    order_id: Uuid,
    trader_id: Uuid,
    receipt_key: Option<&str>,
    issued_at: i64,
) -> TraderCommand {
    TraderCommand {
        command_id: IdPurpose::PaymentPageCommand
            .id(format!("{order_id}:client_confirmed").as_bytes()),
        trader_id: trader_id.into(),
        order_id: Some(order_id.into()),
        kind: TraderCommandKind::ClientConfirmed,
        amount: None,
        resolution: None,
        receipt_key: receipt_key.map(str::to_owned),
        actor_id: None,
        actor_role: Some("customer".into()),
        reason: None,
        issued_at,
    }
}

/// A trader's own command about one of his orders (confirm, report non-payment), sent by user
/// `actor_id`. One id per order and kind.
pub fn from_trader(
    order_id: Uuid,
    trader_id: Uuid,
    kind: TraderCommandKind,
    actor_id: Uuid,
    reason: Option<String>,
    issued_at: i64,
) -> TraderCommand {
    TraderCommand {
        // `{kind:?}` (`TraderConfirmed`) is part of the id's name: ids in the trader book's
        // memory were made with it.
        command_id: IdPurpose::TraderApiCommand.id(format!("{order_id}:{kind:?}").as_bytes()),
        trader_id: trader_id.into(),
        order_id: Some(order_id.into()),
        kind,
        amount: None,
        resolution: None,
        receipt_key: None,
        actor_id: Some(actor_id),
        actor_role: Some("trader".into()),
        reason,
        issued_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_those_of_before_the_move() {
        // The values the payment page and the trader API derived with their own namespaces:
        // a repeated click after an upgrade must still be the same command.
        let order = Uuid::from_u128(1);
        let trader = Uuid::from_u128(2);
        let page = Uuid::from_u128(0x7c1e_4e4a_2b0d_4f3b_9a61_3f0e_5d2c_8a17);
        let api = Uuid::from_u128(0x2f6a_9b31_7e0c_4d55_8c2e_41a9_6b7d_03f1);
        assert_eq!(
            client_confirmed(order, trader, None, 0).command_id,
            Uuid::new_v5(&page, format!("{order}:client_confirmed").as_bytes())
        );
        assert_eq!(
            from_trader(
                order,
                trader,
                TraderCommandKind::ReportNonPayment,
                trader,
                None,
                0
            )
            .command_id,
            Uuid::new_v5(&api, format!("{order}:ReportNonPayment").as_bytes())
        );
    }

    #[test]
    fn one_id_per_order_and_kind() {
        let (a, b, t) = (Uuid::from_u128(1), Uuid::from_u128(3), Uuid::from_u128(2));
        let confirm = |order| from_trader(order, t, TraderCommandKind::TraderConfirmed, t, None, 0);
        assert_eq!(confirm(a).command_id, confirm(a).command_id);
        assert_ne!(confirm(a).command_id, confirm(b).command_id);
        assert_ne!(
            confirm(a).command_id,
            from_trader(a, t, TraderCommandKind::ReportNonPayment, t, None, 0).command_id
        );
        assert_ne!(
            client_confirmed(a, t, None, 0).command_id,
            confirm(a).command_id
        );
    }
}
