//! One fixed, fully populated record of every type: the fixtures of the round-trip and
//! golden-bytes tests, and handy sample data for broker and registry tests.

use crate::records::*;
use rust_decimal::Decimal;
use std::str::FromStr;
use uuid::Uuid;

/// A sample id: a `Uuid` or any of the domain's id newtypes.
fn id<T: From<Uuid>>(n: u128) -> T {
    T::from(Uuid::from_u128(n))
}

/// A sample amount: a `Decimal` or a domain amount at its scale.
fn dec<T>(s: &str) -> T
where
    T: TryFrom<Decimal>,
    T::Error: std::fmt::Debug,
{
    T::try_from(Decimal::from_str(s).expect("sample decimal")).expect("sample amount")
}

/// 2026-11-26T10:00:00Z.
pub const AT: i64 = 1_795_687_200_000;

pub fn order_requested() -> OrderRequested {
    OrderRequested {
        order_id: id(1),
        store_id: id(2),
        external_order_id: "ext-1".into(),
        direction: Direction::PayIn,
        fiat_amount: Some(dec("5000.00")),
        fiat_currency: "RUB".into(),
        payment_method: "sbp".into(),
        customer_id: Some("customer-7".into()),
        callback_url: Some("https://merchant.example/cb".into()),
        success_url: None,
        fail_url: None,
        payment_token: "tok_abc".into(),
        expires_at: Some(AT + 900_000),
        requested_at: AT,
    }
}

pub fn order_screened() -> OrderScreened {
    OrderScreened {
        order_id: id(1),
        store_id: id(2),
        external_order_id: "ext-1".into(),
        direction: Direction::PayIn,
        pool: "RUB:sbp".into(),
        fiat_amount: dec("5000.00"),
        fiat_currency: "RUB".into(),
        payment_method: "sbp".into(),
        customer_id: None,
        excluded_traders: vec![id(9)],
        attempt: 1,
        expires_at: Some(AT + 900_000),
        refusals: vec![CandidateDecision {
            trader_id: id(9),
            requisite_id: Some(id(10)),
            outcome: CandidateOutcome::Refused,
            reason_code: Some("insufficient_deposit".into()),
        }],
        requested_at: AT,
        screened_at: AT + 5,
    }
}

pub fn order_routed() -> OrderRouted {
    OrderRouted {
        order_id: id(1),
        store_id: id(2),
        external_order_id: "ext-1".into(),
        direction: Direction::PayIn,
        pool: "RUB:sbp".into(),
        trader_id: id(3),
        requisite_id: id(4),
        fiat_amount: dec("5000.00"),
        fiat_currency: "RUB".into(),
        payment_method: "sbp".into(),
        rate: dec("92.5"),
        crypto_amount: dec("54.054054"),
        excluded_traders: vec![],
        attempt: 0,
        expires_at: Some(AT + 900_000),
        candidates: vec![
            CandidateDecision {
                trader_id: id(11),
                requisite_id: Some(id(12)),
                outcome: CandidateOutcome::Skipped,
                reason_code: Some("min_interval".into()),
            },
            CandidateDecision {
                trader_id: id(3),
                requisite_id: Some(id(4)),
                outcome: CandidateOutcome::Chosen,
                reason_code: None,
            },
        ],
        requested_at: AT,
        routed_at: AT + 9,
    }
}

pub fn order_event() -> OrderEvent {
    OrderEvent {
        event_id: id(5),
        order_id: id(1),
        store_id: id(2),
        external_order_id: "ext-1".into(),
        direction: Direction::PayIn,
        sequence: 3,
        kind: OrderEventKind::Completed,
        status: OrderStatus::Completed,
        previous_status: Some(OrderStatus::ClientConfirmed),
        fiat_amount: Some(dec("5000.00")),
        fiat_currency: "RUB".into(),
        payment_method: "sbp".into(),
        rate: Some(dec("92.5")),
        crypto_amount: Some(dec("54.054054")),
        store_commission: Some(dec("1.621622")),
        trader_reward: Some(dec("1.081081")),
        trader_id: Some(id(3)),
        requisite_id: Some(id(4)),
        customer_id: None,
        callback_url: None,
        payment_token: Some("tok_abc".into()),
        expires_at: None,
        reason_code: None,
        reason_detail: None,
        candidates: vec![CandidateDecision {
            trader_id: id(3),
            requisite_id: Some(id(4)),
            outcome: CandidateOutcome::Chosen,
            reason_code: None,
        }],
        occurred_at: AT + 60_000,
    }
}

pub fn trader_command() -> TraderCommand {
    TraderCommand {
        command_id: id(6),
        trader_id: id(3),
        order_id: Some(id(1)),
        kind: TraderCommandKind::TraderConfirmed,
        amount: None,
        resolution: Some(DisputeResolution::InFavourOfTrader),
        receipt_key: Some("receipts/1.pdf".into()),
        actor_id: Some(id(7)),
        actor_role: Some("trader".into()),
        reason: None,
        issued_at: AT + 30_000,
    }
}

pub fn ledger_transfer() -> LedgerTransfer {
    let entry = |owner_kind, owner_id, account_kind, amount: &str| LedgerEntry {
        owner_kind,
        owner_id,
        account_kind,
        currency: "USDT".into(),
        amount: dec(amount),
    };
    LedgerTransfer {
        transfer_id: id(8),
        kind: TransferKind::PayIn,
        order_id: Some(id(1)),
        description: Some("pay-in completed".into()),
        entries: vec![
            entry(
                AccountOwnerKind::Trader,
                Some(id(3)),
                AccountKind::Hold,
                "-54.054054",
            ),
            entry(
                AccountOwnerKind::Trader,
                Some(id(3)),
                AccountKind::Available,
                "1.081081",
            ),
            entry(
                AccountOwnerKind::Store,
                Some(id(2)),
                AccountKind::Available,
                "52.432432",
            ),
            entry(
                AccountOwnerKind::Platform,
                None,
                AccountKind::Fees,
                "0.540541",
            ),
        ],
        created_at: AT + 61_000,
    }
}

pub fn store_posting() -> StorePosting {
    StorePosting {
        posting_id: id(10),
        store_id: id(2),
        order_id: Some(id(1)),
        transfer_id: Some(id(8)),
        kind: PostingKind::Credit,
        currency: "USDT".into(),
        amount: dec("52.432432"),
        posted_at: AT + 61_000,
    }
}

pub fn trader_posting() -> TraderPosting {
    TraderPosting {
        posting_id: id(11),
        trader_id: id(3),
        order_id: Some(id(1)),
        transfer_id: Some(id(8)),
        kind: PostingKind::Capture,
        currency: "USDT".into(),
        amount: dec("54.054054"),
        posted_at: AT + 61_000,
    }
}

pub fn trader_capacity() -> TraderCapacity {
    TraderCapacity {
        trader_id: id(3),
        free_deposit: dec("945.945946"),
        requisites: vec![RequisiteUsage {
            requisite_id: id(4),
            daily_turnover: dec("5000.00"),
            monthly_turnover: dec("125000.00"),
            daily_count: 1,
            monthly_count: 25,
            last_order_at: Some(AT),
            open_amounts: vec![dec("5000.00"), dec("-0.01")],
        }],
        version: 42,
        updated_at: AT + 10,
    }
}

pub fn trader() -> Trader {
    Trader {
        trader_id: id(3),
        team_id: Some(id(12)),
        priority: 1,
        is_active: true,
        is_in_work: true,
        is_traffic_enabled_by_teamlead: true,
        commissions: vec![TraderCommission {
            payment_method: "sbp".into(),
            direction: Direction::PayIn,
            percent: dec("2.0000"),
        }],
        requisites: vec![Requisite {
            requisite_id: id(4),
            payment_method: "sbp".into(),
            fiat_currency: "RUB".into(),
            bank_code: Some("sber".into()),
            kind: RequisiteKind::Phone,
            number_masked: "+7 *** *** 12 34".into(),
            holder_name: "Ivan I.".into(),
            pay_in_enabled: true,
            pay_out_enabled: false,
            min_amount: dec("100.00"),
            max_amount: dec("50000.00"),
            daily_turnover_limit: Some(dec("500000.00")),
            monthly_turnover_limit: None,
            daily_count_limit: Some(50),
            monthly_count_limit: None,
            min_interval_secs: 60,
            moderation_status: ModerationStatus::Approved,
            is_active: true,
        }],
        updated_at: AT,
    }
}

pub fn store() -> Store {
    Store {
        store_id: id(2),
        merchant_id: id(13),
        name: "Coffee shop".into(),
        is_enabled: true,
        callback_url: Some("https://merchant.example/cb".into()),
        commissions: vec![StoreCommission {
            payment_method: "sbp".into(),
            direction: Direction::PayOut,
            percent: dec("3.5"),
        }],
        updated_at: AT,
    }
}

pub fn rate() -> Rate {
    Rate {
        fiat_currency: "RUB".into(),
        rate: dec("92.5"),
        source: "manual".into(),
        observed_at: AT,
    }
}

pub fn setting() -> Setting {
    Setting {
        key: "fraud.review_threshold".into(),
        value_type: SettingType::Decimal,
        value_json: "\"100000.00\"".into(),
        updated_at: AT,
    }
}

pub fn changelog() -> ChangelogEntry {
    ChangelogEntry {
        state_key: id::<Uuid>(2).to_string(),
        state: Some(vec![0, 1, 2, 255]),
        state_schema_id: Some(200),
        covered_offsets: vec![InputOffset {
            topic: "orders.requested".into(),
            partition: 3,
            offset: 1_000,
        }],
        marker: None,
        written_at: AT,
        writer: Some(id::<Uuid>(3).to_string()),
        batch: Some(LoggedBatch {
            sequence: 42,
            chunk: 0,
            chunks: 1,
            changes: vec![LoggedChange {
                state_key: id::<Uuid>(2).to_string(),
                state: Some(vec![7, 0, 9]),
            }],
            outputs: vec![LoggedOutput {
                topic: "orders.events".into(),
                key: vec![0, 0, 0, 0, 1, 2],
                payload: vec![0, 0, 0, 0, 104, 8, 255],
            }],
        }),
    }
}

pub fn dead_letter() -> DeadLetter {
    DeadLetter {
        source_topic: "orders.requested".into(),
        source_partition: 3,
        source_offset: 17,
        consumer: "fraud".into(),
        error: "record is not in the Confluent wire format".into(),
        key: Some(b"k".to_vec()),
        payload: Some(b"garbage".to_vec()),
        failed_at: AT,
    }
}
