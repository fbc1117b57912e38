//! Property tests: random sequences of routed orders, commands, postings and time.

use super::fixtures::*;
use super::{Outcome, TraderBookProcessor, Window};
use crate::core::{Emit, Input, Millis, Processor};
use jivapay_schemas::records::{OrderEventKind, PostingKind, TraderCommandKind as K};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone)]
enum Op {
    /// A routed order of `fiat_units * 50` RUB (few distinct amounts, so duplicates happen),
    /// requested `late_secs` before it is routed (past the 600 s window now and then).
    Route {
        requisite: u8,
        fiat_units: u32,
        crypto_cents: u32,
        late_secs: u32,
    },
    /// A command about an assigned order (one time in five: about any routed order).
    Command {
        kind: u8,
        order: usize,
    },
    Deposit {
        cents: u32,
    },
    Withdraw {
        cents: u32,
    },
    /// Commissions captures the hold of a completed order, with its amount.
    CaptureCompleted {
        pick: usize,
    },
    ReleaseCompleted {
        pick: usize,
    },
    Credit {
        cents: u32,
    },
    /// Time passes and the runtime ticks.
    Wait {
        secs: u32,
    },
    /// The last input once more.
    Replay,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..5u8, 2..40u32, 1..40_000u32, prop_oneof![9 => 0..60u32, 1 => 500..700u32])
            .prop_map(|(requisite, fiat_units, crypto_cents, late_secs)| {
                Op::Route { requisite, fiat_units, crypto_cents, late_secs }
            }),
        4 => (0..4u8, 0..200usize).prop_map(|(kind, order)| Op::Command { kind, order }),
        1 => (1..50_000u32).prop_map(|cents| Op::Deposit { cents }),
        1 => (1..50_000u32).prop_map(|cents| Op::Withdraw { cents }),
        1 => (0..10usize).prop_map(|pick| Op::CaptureCompleted { pick }),
        1 => (0..10usize).prop_map(|pick| Op::ReleaseCompleted { pick }),
        1 => (1..1_000u32).prop_map(|cents| Op::Credit { cents }),
        2 => (0..400u32).prop_map(|secs| Op::Wait { secs }),
        1 => Just(Op::Replay),
    ]
}

fn cents(n: u32) -> Decimal {
    Decimal::new(i64::from(n), 2)
}

/// Limits on requisite 1 only, so both limited and unlimited requisites are exercised.
fn limited_book() -> Book {
    let b = Book::new();
    b.edit_requisite(1, |r| {
        r.daily_turnover_limit = Some(d("5000"));
        r.monthly_turnover_limit = Some(d("8000"));
        r.daily_count_limit = Some(3);
        r.min_interval_secs = 30;
    });
    b.set("orders.payment_window_secs", "600");
    b.set("orders.trader_confirmation_timeout_secs", "900");
    b
}

/// Drives the book through `ops`; returns every input with its time and what came out.
struct Driver {
    now: Millis,
    next_id: u128,
    routed: Vec<OrderId>,
    assigned: Vec<OrderId>,
    completed: Vec<(OrderId, UsdtAmount)>,
    last: Option<Input>,
    /// The balance as the applied inputs say it must be.
    expected_balance: Decimal,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            now: T0,
            next_id: 0,
            routed: Vec::new(),
            assigned: Vec::new(),
            completed: Vec::new(),
            last: None,
            expected_balance: Decimal::ZERO,
        }
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        self.next_id
    }

    /// The input for `op`, or a tick (`None`).
    fn input(&mut self, op: &Op) -> Option<Input> {
        match op.clone() {
            Op::Route {
                requisite,
                fiat_units,
                crypto_cents,
                late_secs,
            } => {
                let n = self.id();
                // 0: a requisite master data does not know; 1–2 and 3–4: requisites 1 and 2.
                let mut r = on_requisite(routed(n, "100"), u128::from(requisite.div_ceil(2)));
                r = requested(r, self.now - Millis::from(late_secs) * SEC);
                r.fiat_amount = FiatAmount::rounded(Decimal::from(fiat_units * 50));
                r.crypto_amount = UsdtAmount::rounded(cents(crypto_cents));
                self.routed.push(r.order_id);
                Some(Input::Routed(r))
            }
            Op::Command { kind, order } => {
                let pool = if order % 5 == 0 || self.assigned.is_empty() {
                    &self.routed
                } else {
                    &self.assigned
                };
                let order = *pool.get((order / 5) % pool.len().max(1))?;
                let kind = [
                    K::ClientConfirmed,
                    K::TraderConfirmed,
                    K::ReportNonPayment,
                    K::CancelOrder,
                ][usize::from(kind) % 4];
                let n = self.id();
                Some(Input::Command(command(n, kind, Some(order), None)))
            }
            Op::Deposit { cents: c } => {
                let n = self.id();
                Some(Input::Command(command(
                    n,
                    K::Deposit,
                    None,
                    Some(UsdtAmount::rounded(cents(c))),
                )))
            }
            Op::Withdraw { cents: c } => {
                let n = self.id();
                Some(Input::Command(command(
                    n,
                    K::Withdraw,
                    None,
                    Some(UsdtAmount::rounded(cents(c))),
                )))
            }
            Op::CaptureCompleted { pick } | Op::ReleaseCompleted { pick } => {
                if self.completed.is_empty() {
                    return None;
                }
                let (order, amount) = self.completed.remove(pick % self.completed.len());
                let kind = if matches!(op, Op::CaptureCompleted { .. }) {
                    PostingKind::Capture
                } else {
                    PostingKind::Release
                };
                let n = self.id();
                Some(Input::TraderPosting(posting(
                    n,
                    kind,
                    Some(order),
                    &amount.to_string(),
                )))
            }
            Op::Credit { cents: c } => {
                let n = self.id();
                Some(Input::TraderPosting(posting(
                    n,
                    PostingKind::Credit,
                    None,
                    &cents(c).to_string(),
                )))
            }
            Op::Wait { secs } => {
                self.now += Millis::from(secs) * SEC;
                None
            }
            Op::Replay => self.last.clone().filter(reaches_the_book_twice),
        }
    }

    /// Learns from what the book did: completed orders await capture; applied money moves.
    fn observe(&mut self, input: Option<&Input>, outcome: Outcome, out: &[Emit]) {
        for e in events(out) {
            if e.kind == OrderEventKind::Assigned {
                self.assigned.push(e.order_id);
            }
            if e.kind == OrderEventKind::Completed {
                self.completed
                    .push((e.order_id, e.crypto_amount.unwrap_or_default()));
            }
        }
        if outcome != Outcome::Applied {
            return;
        }
        match input {
            Some(Input::Command(c)) if c.kind == K::Deposit => {
                self.expected_balance += c.amount.unwrap_or_default().value();
            }
            Some(Input::Command(c)) if c.kind == K::Withdraw => {
                self.expected_balance -= c.amount.unwrap_or_default().value();
            }
            Some(Input::TraderPosting(p)) if p.kind == PostingKind::Capture => {
                self.expected_balance -= p.amount;
            }
            Some(Input::TraderPosting(p)) if p.kind == PostingKind::Credit => {
                self.expected_balance += p.amount;
            }
            _ => {}
        }
    }

    /// Applies `op` to `book`; returns the input (if any), its time and the outputs.
    fn step(
        &mut self,
        book: &mut TraderBookProcessor,
        op: &Op,
    ) -> (Option<Input>, Millis, Vec<Emit>) {
        let input = self.input(op);
        let (mut out, outcome) = match &input {
            Some(i) => book.apply_explained(i.clone(), self.now),
            None => (book.tick(self.now), Outcome::NotForThisBook),
        };
        // Each step is a batch of one, as the runtime would run it.
        out.extend(book.finish_batch(self.now));
        self.observe(input.as_ref(), outcome, &out);
        if input.is_some() && !matches!(op, Op::Replay) {
            self.last = input.clone();
        }
        (input, self.now, out)
    }
}

fn check_invariants(
    book: &TraderBookProcessor,
    driver: &Driver,
    now: Millis,
) -> Result<(), TestCaseError> {
    let Some(s) = book.trader(TRADER) else {
        return Ok(());
    };
    prop_assert!(
        s.free_deposit() >= Decimal::ZERO,
        "free deposit {} < 0",
        s.free_deposit()
    );
    prop_assert_eq!(s.balance(), driver.expected_balance);
    // Every open order holds exactly its crypto amount.
    for (id, o) in s.open_orders() {
        prop_assert_eq!(s.hold((*id).into()), Some(o.crypto_amount), "order {}", id);
    }
    // No two open orders share a requisite and an amount.
    let mut seen = HashSet::new();
    for (_, o) in s.open_orders() {
        prop_assert!(
            seen.insert((o.requisite_id, o.fiat_amount)),
            "duplicate open amount {:?}",
            o
        );
    }
    // Limits of requisite 1 hold in the current window.
    let u = s.usage_at(requisite_id(1), Window::at(now, "Europe/Moscow"));
    prop_assert!(
        u.daily_turnover <= d("5000"),
        "daily turnover {}",
        u.daily_turnover
    );
    prop_assert!(u.monthly_turnover <= d("8000"));
    prop_assert!(u.daily_count <= 3);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Holds never let the free deposit go below zero, the balance is exactly what the applied
    /// money inputs say, open orders are held, limits hold, and every order gets increasing
    /// sequences and at most one terminal event.
    #[test]
    fn the_book_never_overdraws_and_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        let mut b = limited_book();
        let mut driver = Driver::new();
        let mut sequences: BTreeMap<OrderId, i32> = BTreeMap::new();
        let mut terminal: HashSet<OrderId> = HashSet::new();
        let mut event_ids = HashSet::new();
        for op in &ops {
            let (_, now, out) = driver.step(&mut b.book, op);
            for e in events(&out) {
                prop_assert!(event_ids.insert(e.event_id), "event id twice: {:?}", e);
                let last = sequences.insert(e.order_id, e.sequence).unwrap_or(1);
                prop_assert!(e.sequence > last, "sequence {} after {}", e.sequence, last);
                prop_assert!(!terminal.contains(&e.order_id), "event after a terminal one: {:?}", e);
                if matches!(e.kind, OrderEventKind::Completed | OrderEventKind::Cancelled | OrderEventKind::Expired) {
                    terminal.insert(e.order_id);
                }
            }
            for c in capacities(&out) {
                prop_assert!(c.free_deposit >= UsdtAmount::ZERO);
            }
            check_invariants(&b.book, &driver, now)?;
        }
    }

    /// Applying any input a second time right after the first gives nothing and changes
    /// nothing.
    #[test]
    fn every_input_is_idempotent(ops in proptest::collection::vec(op(), 1..80)) {
        let mut b = limited_book();
        let mut driver = Driver::new();
        for op in &ops {
            let (input, now, _) = driver.step(&mut b.book, op);
            let Some(input) = input.filter(reaches_the_book_twice) else { continue };
            let before = serde_json::to_string(&b.book.trader(TRADER)).unwrap_or_default();
            let (out, outcome) = b.book.apply_explained(input, now);
            prop_assert!(out.is_empty(), "a replay emitted {:?}", out);
            prop_assert_eq!(outcome, Outcome::Replay);
            let after = serde_json::to_string(&b.book.trader(TRADER)).unwrap_or_default();
            prop_assert_eq!(before, after);
        }
    }

    /// Restoring the changelog at any point gives a book that answers every later input
    /// exactly as the original does.
    #[test]
    fn a_restored_book_continues_identically(
        ops in proptest::collection::vec(op(), 1..100),
        cut in 0usize..100,
    ) {
        let mut b = limited_book();
        let cut = cut % ops.len();
        let mut driver = Driver::new();
        let mut changelog: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        for op in &ops[..cut] {
            driver.step(&mut b.book, op);
            // The runtime writes changes after every batch; compaction keeps the last.
            changelog.extend(b.book.take_changes());
        }
        let mut restored = b.fresh();
        for (key, state) in &changelog {
            restored.restore(key, state.as_deref());
        }
        for op in &ops[cut..] {
            let (input, now, out) = driver.step(&mut b.book, op);
            let mut theirs = match input {
                Some(i) => restored.apply(i, now),
                None => restored.tick(now),
            };
            theirs.extend(restored.finish_batch(now));
            prop_assert_eq!(out, theirs);
        }
        prop_assert_eq!(b.book.take_changes(), restored.take_changes());
    }
}
