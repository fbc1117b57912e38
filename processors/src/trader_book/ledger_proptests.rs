//! Property test: the ledger agrees with the book.
//!
//! The trader book and the commissions stage run together as in the pipeline: every event of
//! the book goes to commissions, every ledger transfer of either goes to a model of the ledger
//! sink, and the trader postings of commissions come back to the book later, in order, a few
//! at a time. Whatever happens — deposits, withdrawals (refused ones too), routed orders,
//! confirmations, cancellations, expiries, replays — the trader's balance in the ledger
//! (AVAILABLE + HOLD, see the module notes) equals the book's balance plus what the postings
//! still on their way will change.

use super::fixtures::*;
use super::{Outcome, TraderBookProcessor};
use crate::commissions::CommissionsProcessor;
use crate::core::{Emit, Input, Millis, Processor};
use jivapay_schemas::records::{
    AccountKind, AccountOwnerKind, Direction, LedgerTransfer, PostingKind, StoreCommission,
    TraderCommandKind as K, TraderCommission, TraderPosting, TransferKind,
};
use jivapay_schemas::samples;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::{HashSet, VecDeque};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Route {
        requisite: u8,
        fiat_units: u32,
        crypto_cents: u32,
    },
    /// A command about the `order`-th routed order.
    Command {
        kind: u8,
        order: usize,
    },
    Deposit {
        micros: u64,
    },
    Withdraw {
        micros: u64,
    },
    /// The next `count` postings of commissions reach the book.
    Deliver {
        count: usize,
    },
    Wait {
        secs: u32,
    },
    /// The last input to the book once more.
    Replay,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..3u8, 2..40u32, 1..40_000u32).prop_map(|(requisite, fiat_units, crypto_cents)| {
            Op::Route { requisite, fiat_units, crypto_cents }
        }),
        5 => (0..6u8, 0..64usize).prop_map(|(kind, order)| Op::Command { kind, order }),
        2 => (1..500_000_000u64).prop_map(|micros| Op::Deposit { micros }),
        2 => (1..500_000_000u64).prop_map(|micros| Op::Withdraw { micros }),
        2 => (0..4usize).prop_map(|count| Op::Deliver { count }),
        1 => (0..700u32).prop_map(|secs| Op::Wait { secs }),
        1 => Just(Op::Replay),
    ]
}

/// The trader book, commissions, the ledger as the sink writes it, and the postings between.
struct Pipeline {
    book: Book,
    commissions: CommissionsProcessor,
    ledger: Vec<LedgerTransfer>,
    transfer_ids: HashSet<Uuid>,
    /// Trader postings of commissions not yet applied by the book, oldest first.
    in_flight: VecDeque<TraderPosting>,
    now: Millis,
    next_id: u128,
    routed: Vec<OrderId>,
    last: Option<Input>,
}

impl Pipeline {
    fn new() -> Pipeline {
        let book = Book::new();
        book.set("orders.payment_window_secs", "600");
        book.set("orders.trader_confirmation_timeout_secs", "900");
        book.edit_trader(|t| {
            t.commissions = vec![TraderCommission {
                payment_method: "sbp".into(),
                direction: Direction::PayIn,
                percent: d("2.5"),
            }]
        });
        let mut store = samples::store();
        store.store_id = STORE;
        store.commissions = vec![StoreCommission {
            payment_method: "sbp".into(),
            direction: Direction::PayIn,
            percent: d("4.25"),
        }];
        book.master
            .stores
            .lock()
            .expect("lock")
            .insert(STORE, store);
        let commissions = CommissionsProcessor::new(book.master.clone());
        Pipeline {
            book,
            commissions,
            ledger: Vec::new(),
            transfer_ids: HashSet::new(),
            in_flight: VecDeque::new(),
            now: T0,
            next_id: 0,
            routed: Vec::new(),
            last: None,
        }
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        self.next_id
    }

    /// Routes the outputs of a stage: events to commissions, transfers to the ledger,
    /// trader postings onto their way back to the book.
    fn deliver(&mut self, out: Vec<Emit>) -> Result<(), TestCaseError> {
        for emit in out {
            match emit {
                Emit::Event(e) => {
                    let settled = self.commissions.apply(Input::Event(e), self.now);
                    self.deliver(settled)?;
                }
                Emit::Transfer(t) => {
                    prop_assert!(t.is_balanced(), "unbalanced transfer {:?}", t);
                    prop_assert!(
                        self.transfer_ids.insert(t.transfer_id),
                        "transfer written twice: {:?}",
                        t
                    );
                    self.ledger.push(t);
                }
                Emit::TraderPosting(p) => self.in_flight.push_back(p),
                Emit::Command(c) => {
                    prop_assert!(false, "one trader, never a second holder: {:?}", c);
                }
                Emit::StorePosting(_) | Emit::Capacity(_) | Emit::Screened(_) | Emit::Routed(_) => {
                }
            }
        }
        Ok(())
    }

    fn feed_book(&mut self, input: Input) -> Result<(), TestCaseError> {
        let (out, outcome) = self.book.explain(input.clone(), self.now);
        let transfers: Vec<&LedgerTransfer> = out
            .iter()
            .filter_map(|e| match e {
                Emit::Transfer(t) => Some(t),
                _ => None,
            })
            .collect();
        match &input {
            Input::Command(c) if matches!(c.kind, K::Deposit | K::Withdraw) => {
                if outcome == Outcome::Applied {
                    prop_assert_eq!(transfers.len(), 1, "{:?}", out);
                    let t = transfers[0];
                    let want = if c.kind == K::Deposit {
                        TransferKind::Deposit
                    } else {
                        TransferKind::Withdrawal
                    };
                    prop_assert_eq!(t.kind, want);
                    let trader_leg: Decimal = t
                        .entries
                        .iter()
                        .filter(|e| e.owner_kind == AccountOwnerKind::Trader)
                        .map(|e| e.amount)
                        .sum();
                    let amount = c.amount.unwrap_or_default().value();
                    let signed = if c.kind == K::Deposit {
                        amount
                    } else {
                        -amount
                    };
                    prop_assert_eq!(trader_leg, signed);
                } else {
                    prop_assert!(transfers.is_empty(), "{:?}: {:?}", outcome, out);
                }
            }
            _ => prop_assert!(transfers.is_empty(), "{:?}", out),
        }
        self.last = Some(input);
        self.deliver(out)
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op.clone() {
            Op::Route {
                requisite,
                fiat_units,
                crypto_cents,
            } => {
                let n = self.id();
                let mut r = on_requisite(routed(n, "100"), u128::from(requisite));
                r = requested(r, self.now - 5 * SEC);
                r.fiat_amount = FiatAmount::rounded(Decimal::from(fiat_units * 50));
                r.crypto_amount = UsdtAmount::rounded(Decimal::new(i64::from(crypto_cents), 2));
                self.routed.push(r.order_id);
                self.feed_book(Input::Routed(r))
            }
            Op::Command { kind, order } => {
                let Some(order) = self.routed.get(order % self.routed.len().max(1)).copied() else {
                    return Ok(());
                };
                // Trader confirmations weigh double: completed orders are what moves money.
                let kind = [
                    K::ClientConfirmed,
                    K::TraderConfirmed,
                    K::TraderConfirmed,
                    K::ReportNonPayment,
                    K::CancelOrder,
                    K::ClientConfirmed,
                ][usize::from(kind) % 6];
                let n = self.id();
                self.feed_book(Input::Command(command(n, kind, Some(order), None)))
            }
            Op::Deposit { micros } | Op::Withdraw { micros } => {
                let kind = if matches!(op, Op::Deposit { .. }) {
                    K::Deposit
                } else {
                    K::Withdraw
                };
                let n = self.id();
                let amount = UsdtAmount::rounded(Decimal::new(micros as i64, 6));
                self.feed_book(Input::Command(command(n, kind, None, Some(amount))))
            }
            Op::Deliver { count } => {
                for _ in 0..count {
                    let Some(p) = self.in_flight.pop_front() else {
                        break;
                    };
                    self.feed_book(Input::TraderPosting(p))?;
                }
                Ok(())
            }
            Op::Wait { secs } => {
                self.now += Millis::from(secs) * SEC;
                let out = self.book.tick(self.now);
                self.deliver(out)
            }
            Op::Replay => match self.last.clone().filter(reaches_the_book_twice) {
                Some(input) => {
                    let (out, outcome) = self.book.explain(input, self.now);
                    prop_assert_eq!(outcome, Outcome::Replay);
                    prop_assert!(out.is_empty(), "a replay emitted {:?}", out);
                    Ok(())
                }
                None => Ok(()),
            },
        }
    }

    /// The trader's deposit in the ledger: his AVAILABLE and HOLD accounts in USDT.
    fn ledger_balance(&self) -> Decimal {
        self.ledger
            .iter()
            .flat_map(|t| &t.entries)
            .filter(|e| {
                e.owner_kind == AccountOwnerKind::Trader
                    && e.owner_id == Some(TRADER.0)
                    && matches!(e.account_kind, AccountKind::Available | AccountKind::Hold)
                    && e.currency == "USDT"
            })
            .map(|e| e.amount)
            .sum()
    }

    /// What the postings still on their way will do to the book's balance.
    fn in_flight_effect(&self) -> Decimal {
        self.in_flight
            .iter()
            .map(|p| match p.kind {
                PostingKind::Credit => p.amount,
                PostingKind::Capture | PostingKind::Debit => -p.amount,
                PostingKind::Hold | PostingKind::Release => Decimal::ZERO,
            })
            .sum()
    }

    fn book_balance(&self) -> Decimal {
        self.book
            .trader_state()
            .map_or(Decimal::ZERO, |s| s.balance())
    }

    fn book(&self) -> &TraderBookProcessor {
        &self.book.book
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// After every step the ledger's AVAILABLE + HOLD of the trader equals the book's balance
    /// plus the postings in flight; once every posting is delivered, they are equal.
    #[test]
    fn the_ledger_balance_of_the_trader_equals_the_book(ops in proptest::collection::vec(op(), 1..150)) {
        let mut p = Pipeline::new();
        for op in &ops {
            p.step(op)?;
            prop_assert_eq!(
                p.ledger_balance(),
                p.book_balance() + p.in_flight_effect(),
                "after {:?}", op
            );
            prop_assert!(p.book().trader(TRADER).is_none_or(|s| s.free_deposit() >= Decimal::ZERO));
        }
        p.step(&Op::Deliver { count: usize::MAX })?;
        prop_assert!(p.in_flight.is_empty());
        prop_assert_eq!(p.ledger_balance(), p.book_balance());
    }
}
