//! Test fixtures: one trader with requisites in `RUB:sbp`, records to feed the book, and
//! helpers to read what it emitted.

use super::{Outcome, TraderBookProcessor, TraderState};
use crate::core::{Emit, InMemoryMasterData, Input, Millis, Processor};
pub use jivapay_domain::{FiatAmount, OrderId, RequisiteId, StoreId, TraderId, UsdtAmount};
use jivapay_schemas::records::{
    Direction, ModerationStatus, OrderEvent, OrderRouted, OrderScreened, PostingKind, Requisite,
    RequisiteKind, Setting, SettingType, Trader, TraderCapacity, TraderCommand, TraderCommandKind,
    TraderPosting,
};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

/// 2024-03-15T10:53:20Z, 13:53:20 in Moscow.
pub const T0: Millis = 1_710_500_000_000;
pub const SEC: Millis = 1000;
pub const TRADER: TraderId = TraderId(Uuid::from_u128(0x100));
pub const STORE: StoreId = StoreId(Uuid::from_u128(0x50));
pub const POOL: &str = "RUB:sbp";
/// When the store requested the orders of [`routed`]: the payment window runs from here.
pub const REQUESTED_AT: Millis = T0 - 10 * SEC;

pub fn d<T: TryFrom<Decimal>>(s: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    let amount = Decimal::from_str(s).unwrap_or_else(|_| panic!("test decimal {s}"));
    T::try_from(amount).unwrap_or_else(|e| panic!("test amount {s}: {e:?}"))
}

pub fn requisite_id(n: u128) -> RequisiteId {
    RequisiteId(Uuid::from_u128(0x200 + n))
}

pub fn order_id(n: u128) -> OrderId {
    OrderId(Uuid::from_u128(0x1000 + n))
}

pub fn requisite(n: u128) -> Requisite {
    Requisite {
        requisite_id: requisite_id(n),
        payment_method: "sbp".into(),
        fiat_currency: "RUB".into(),
        bank_code: Some("sber".into()),
        kind: RequisiteKind::Phone,
        number_masked: "+7 *** ** 12".into(),
        holder_name: "Ivan I.".into(),
        pay_in_enabled: true,
        pay_out_enabled: false,
        min_amount: d("100.00"),
        max_amount: d("100000.00"),
        daily_turnover_limit: None,
        monthly_turnover_limit: None,
        daily_count_limit: None,
        monthly_count_limit: None,
        min_interval_secs: 0,
        moderation_status: ModerationStatus::Approved,
        is_active: true,
    }
}

pub fn trader(requisites: Vec<Requisite>) -> Trader {
    Trader {
        trader_id: TRADER,
        team_id: None,
        priority: 1,
        is_active: true,
        is_in_work: true,
        is_traffic_enabled_by_teamlead: true,
        commissions: Vec::new(),
        requisites,
        updated_at: 0,
    }
}

/// The book and its master data.
pub struct Book {
    pub master: Arc<InMemoryMasterData>,
    pub book: TraderBookProcessor,
    deposits: u128,
}

impl Book {
    /// A book whose trader has requisites 1 and 2 and no deposit yet.
    pub fn new() -> Book {
        Book::with_trader(trader(vec![requisite(1), requisite(2)]))
    }

    pub fn with_trader(t: Trader) -> Book {
        let master = Arc::new(InMemoryMasterData::default());
        master.traders.lock().expect("lock").insert(t.trader_id, t);
        let book = TraderBookProcessor::new(master.clone());
        Book {
            master,
            book,
            deposits: 0,
        }
    }

    /// A fresh processor on the same master data.
    pub fn fresh(&self) -> TraderBookProcessor {
        TraderBookProcessor::new(self.master.clone())
    }

    pub fn edit_trader(&self, edit: impl FnOnce(&mut Trader)) {
        let mut traders = self.master.traders.lock().expect("lock");
        if let Some(t) = traders.get_mut(&TRADER) {
            edit(t);
        }
    }

    pub fn edit_requisite(&self, n: u128, edit: impl FnOnce(&mut Requisite)) {
        self.edit_trader(|t| {
            if let Some(r) = t
                .requisites
                .iter_mut()
                .find(|r| r.requisite_id == requisite_id(n))
            {
                edit(r);
            }
        });
    }

    pub fn set(&self, key: &str, value_json: &str) {
        self.master.settings.lock().expect("lock").insert(
            key.into(),
            Setting {
                key: key.into(),
                value_type: SettingType::String,
                value_json: value_json.into(),
                updated_at: 0,
            },
        );
    }

    /// Applies `input` as a batch of one: its outputs, then the batch's capacity.
    pub fn apply(&mut self, input: Input, now: Millis) -> Vec<Emit> {
        let mut out = self.book.apply(input, now);
        out.extend(self.book.finish_batch(now));
        out
    }

    /// A tick as a batch of its own: fired timers, then the capacities they changed.
    pub fn tick(&mut self, now: Millis) -> Vec<Emit> {
        let mut out = self.book.tick(now);
        out.extend(self.book.finish_batch(now));
        out
    }

    pub fn explain(&mut self, input: Input, now: Millis) -> (Vec<Emit>, Outcome) {
        let (mut out, outcome) = self.book.apply_explained(input, now);
        out.extend(self.book.finish_batch(now));
        (out, outcome)
    }

    pub fn deposit(&mut self, amount: &str, now: Millis) {
        self.deposits += 1;
        let c = command(
            0x9000 + self.deposits,
            TraderCommandKind::Deposit,
            None,
            Some(d(amount)),
        );
        let (_, outcome) = self.explain(Input::Command(c), now);
        assert_eq!(outcome, Outcome::Applied, "deposit");
    }

    pub fn trader_state(&self) -> Option<&TraderState> {
        self.book.trader(TRADER)
    }

    pub fn free(&self) -> Decimal {
        self.trader_state()
            .map_or(Decimal::ZERO, TraderState::free_deposit)
    }
}

/// A routed pay-in of `fiat` RUB at 100 RUB/USDT (crypto = fiat / 100) to requisite 1.
pub fn routed(n: u128, fiat: &str) -> OrderRouted {
    let fiat: FiatAmount = d(fiat);
    OrderRouted {
        order_id: order_id(n),
        store_id: STORE,
        external_order_id: format!("ext-{n}"),
        direction: Direction::PayIn,
        pool: POOL.into(),
        trader_id: TRADER,
        requisite_id: requisite_id(1),
        fiat_amount: fiat,
        fiat_currency: "RUB".into(),
        payment_method: "sbp".into(),
        rate: d("100.00000000"),
        crypto_amount: UsdtAmount::rounded(fiat.value() / Decimal::ONE_HUNDRED),
        excluded_traders: Vec::new(),
        attempt: 1,
        // As a v1 record: the window runs from the request (tests of a carried expiry set it).
        expires_at: None,
        candidates: Vec::new(),
        requested_at: REQUESTED_AT,
        routed_at: T0 - SEC,
    }
}

pub fn on_requisite(mut r: OrderRouted, n: u128) -> OrderRouted {
    r.requisite_id = requisite_id(n);
    r
}

/// `r` as requested at `at` (and routed a second later).
pub fn requested(mut r: OrderRouted, at: Millis) -> OrderRouted {
    r.requested_at = at;
    r.routed_at = at + SEC;
    r
}

pub fn command(
    n: u128,
    kind: TraderCommandKind,
    order: Option<OrderId>,
    amount: Option<UsdtAmount>,
) -> TraderCommand {
    TraderCommand {
        command_id: Uuid::from_u128(0x2000 + n),
        trader_id: TRADER,
        order_id: order,
        kind,
        amount,
        resolution: None,
        receipt_key: None,
        actor_id: None,
        actor_role: Some("trader".into()),
        reason: None,
        issued_at: T0,
    }
}

/// A command about order `order_n`, its id derived from both.
pub fn order_command(n: u128, kind: TraderCommandKind, order_n: u128) -> Input {
    Input::Command(command(n, kind, Some(order_id(order_n)), None))
}

/// The same, accepted by its HTTP edge at `issued_at`.
pub fn order_command_at(
    n: u128,
    kind: TraderCommandKind,
    order_n: u128,
    issued_at: Millis,
) -> Input {
    let mut c = command(n, kind, Some(order_id(order_n)), None);
    c.issued_at = issued_at;
    Input::Command(c)
}

pub fn posting(n: u128, kind: PostingKind, order: Option<OrderId>, amount: &str) -> TraderPosting {
    TraderPosting {
        posting_id: Uuid::from_u128(0x3000 + n),
        trader_id: TRADER,
        order_id: order,
        transfer_id: None,
        kind,
        currency: "USDT".into(),
        amount: d(amount),
        posted_at: T0,
    }
}

pub fn events(out: &[Emit]) -> Vec<&OrderEvent> {
    out.iter()
        .filter_map(|e| match e {
            Emit::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub fn screened(out: &[Emit]) -> Vec<&OrderScreened> {
    out.iter()
        .filter_map(|e| match e {
            Emit::Screened(s) => Some(s),
            _ => None,
        })
        .collect()
}

pub fn capacities(out: &[Emit]) -> Vec<&TraderCapacity> {
    out.iter()
        .filter_map(|e| match e {
            Emit::Capacity(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Every key's state, as the runtime would write it to the changelog.
pub fn export(book: &mut TraderBookProcessor) -> Vec<(String, Option<Vec<u8>>)> {
    book.take_changes()
}

/// Whether `input` can reach the book a second time: commands can (an HTTP edge retrying a
/// send); routed orders and postings come from processors and the runtime drops their
/// duplicates by origin before the book sees them (`runtime/origins.rs`).
pub fn reaches_the_book_twice(input: &Input) -> bool {
    matches!(input, Input::Command(_))
}
