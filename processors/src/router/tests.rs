use super::eligibility::{LONGEST_DAY_MS, LONGEST_MONTH_MS};
use super::*;
use crate::core::{derived_id, Emit, InMemoryMasterData, Input, MasterData, Millis, Processor};
use jivapay_domain::{FiatAmount, OrderId, RequisiteId};
use jivapay_schemas::records::{
    CandidateDecision, CandidateOutcome, Direction, ModerationStatus, OrderEvent, OrderEventKind,
    OrderRouted, OrderScreened, OrderStatus, Rate, Requisite, RequisiteUsage, Trader,
    TraderCapacity,
};
use jivapay_schemas::samples;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

const T0: Millis = samples::AT;
const POOL: &str = "RUB:sbp";

fn dec<T: TryFrom<Decimal>>(s: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(Decimal::from_str(s).unwrap()).unwrap()
}

fn tid<T: From<Uuid>>(n: u128) -> T {
    Uuid::from_u128(0x7000 + n).into()
}

fn rid<T: From<Uuid>>(n: u128) -> T {
    Uuid::from_u128(0x8000 + n).into()
}

fn requisite(n: u128) -> Requisite {
    Requisite {
        requisite_id: rid(n),
        min_amount: dec("100.00"),
        max_amount: dec("50000.00"),
        daily_turnover_limit: None,
        monthly_turnover_limit: None,
        daily_count_limit: None,
        monthly_count_limit: None,
        min_interval_secs: 0,
        ..samples::trader().requisites[0].clone()
    }
}

fn trader(n: u128, priority: i32, requisites: Vec<Requisite>) -> Trader {
    Trader {
        trader_id: tid(n),
        priority,
        requisites,
        ..samples::trader()
    }
}

fn capacity(trader: &Trader, free: &str) -> TraderCapacity {
    TraderCapacity {
        trader_id: trader.trader_id,
        free_deposit: dec(free),
        requisites: Vec::new(),
        version: 1,
        updated_at: T0,
    }
}

fn usage(n: u128) -> RequisiteUsage {
    RequisiteUsage {
        requisite_id: rid(n),
        daily_turnover: FiatAmount::ZERO,
        monthly_turnover: FiatAmount::ZERO,
        daily_count: 0,
        monthly_count: 0,
        last_order_at: None,
        open_amounts: Vec::new(),
    }
}

/// Master data with `traders`, each with a generous capacity, and the RUB rate 92.5.
fn master(traders: Vec<Trader>) -> Arc<InMemoryMasterData> {
    let md = InMemoryMasterData::default();
    for t in traders {
        md.capacities
            .lock()
            .unwrap()
            .insert(t.trader_id, capacity(&t, "1000000"));
        md.traders.lock().unwrap().insert(t.trader_id, t);
    }
    md.rates.lock().unwrap().insert(
        "RUB".into(),
        Rate {
            rate: dec("92.5"),
            ..samples::rate()
        },
    );
    Arc::new(md)
}

fn order(n: u128, amount: &str) -> OrderScreened {
    OrderScreened {
        order_id: OrderId(Uuid::from_u128(0x0de0_0000 + n)),
        fiat_amount: dec(amount),
        excluded_traders: Vec::new(),
        refusals: Vec::new(),
        attempt: 0,
        ..samples::order_screened()
    }
}

fn route(p: &mut RouterProcessor, o: OrderScreened, now: Millis) -> Emit {
    let mut out = p.apply(Input::Screened(o), now);
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

fn routed(e: Emit) -> OrderRouted {
    match e {
        Emit::Routed(r) => r,
        other => panic!("expected a routed order, got {other:?}"),
    }
}

fn failed(e: Emit) -> OrderEvent {
    match e {
        Emit::Event(ev) => ev,
        other => panic!("expected NO_REQUISITE, got {other:?}"),
    }
}

#[test]
fn an_eligible_requisite_is_proposed_with_rate_and_crypto_amount() {
    let md = master(vec![trader(1, 1, vec![requisite(1)])]);
    let mut p = RouterProcessor::new(md);
    let mut o = order(1, "5000.00");
    o.excluded_traders = vec![tid(9)];
    o.attempt = 3;
    let r = routed(route(&mut p, o.clone(), T0 + 5));
    assert_eq!((r.trader_id, r.requisite_id), (tid(1), rid(1)));
    assert_eq!(r.rate, dec("92.5"));
    assert_eq!(r.crypto_amount, dec("54.054054"));
    assert_eq!(r.excluded_traders, vec![tid(9)]);
    assert_eq!(r.attempt, 3);
    assert_eq!(
        (r.order_id, r.store_id, r.pool.as_str()),
        (o.order_id, o.store_id, POOL)
    );
    assert_eq!((r.requested_at, r.routed_at), (o.requested_at, T0 + 5));
    assert_eq!(r.fiat_amount, dec("5000.00"));
}

#[test]
fn the_crypto_amount_rounds_half_away_from_zero_at_six_places() {
    assert_eq!(
        crypto_amount(dec("0.01"), dec("20000")),
        Some(dec("0.000001"))
    );
    assert_eq!(
        crypto_amount(dec("0.05"), dec("20000")),
        Some(dec("0.000003"))
    );
    assert_eq!(
        crypto_amount(dec("0.04"), dec("20000")),
        Some(dec("0.000002"))
    );
    assert_eq!(
        crypto_amount(dec("100.00"), dec("3")),
        Some(dec("33.333333"))
    );
    assert_eq!(
        crypto_amount(dec("200.00"), dec("3")),
        Some(dec("66.666667"))
    );
    assert_eq!(crypto_amount(dec("1.00"), Decimal::ZERO), None);
    assert_eq!(crypto_amount(dec("1.00"), dec("-1")), None);
}

/// A change that makes the single requisite of the pool ineligible, and the reason expected.
type Breaker = fn(&mut Trader, &mut TraderCapacity, &mut OrderScreened);

#[test]
fn each_eligibility_rule_can_exclude_a_requisite() {
    let cases: Vec<(&str, Breaker)> = vec![
        ("excluded_after_refusal", |_, _, o| {
            o.excluded_traders = vec![tid(1)]
        }),
        ("trader_inactive", |t, _, _| t.is_active = false),
        ("not_in_work", |t, _, _| t.is_in_work = false),
        ("traffic_disabled_by_team_lead", |t, _, _| {
            t.is_traffic_enabled_by_teamlead = false
        }),
        ("requisite_not_approved", |t, _, _| {
            t.requisites[0].moderation_status = ModerationStatus::Pending
        }),
        ("requisite_not_approved", |t, _, _| {
            t.requisites[0].moderation_status = ModerationStatus::Blocked
        }),
        ("requisite_inactive", |t, _, _| {
            t.requisites[0].is_active = false
        }),
        ("pay_in_disabled", |t, _, _| {
            t.requisites[0].pay_in_enabled = false
        }),
        ("pay_out_disabled", |_, _, o| {
            o.direction = Direction::PayOut
        }),
        ("below_min_amount", |t, _, _| {
            t.requisites[0].min_amount = dec("5000.01")
        }),
        ("above_max_amount", |t, _, _| {
            t.requisites[0].max_amount = dec("4999.99")
        }),
        ("insufficient_deposit", |_, c, _| {
            c.free_deposit = dec("54.054053")
        }),
        ("daily_turnover_limit", |t, c, _| {
            t.requisites[0].daily_turnover_limit = Some(dec("10000.00"));
            c.requisites = vec![RequisiteUsage {
                daily_turnover: dec("5000.01"),
                ..usage(1)
            }];
        }),
        ("monthly_turnover_limit", |t, c, _| {
            t.requisites[0].monthly_turnover_limit = Some(dec("10000.00"));
            c.requisites = vec![RequisiteUsage {
                monthly_turnover: dec("5000.01"),
                ..usage(1)
            }];
        }),
        ("daily_count_limit", |t, c, _| {
            t.requisites[0].daily_count_limit = Some(3);
            c.requisites = vec![RequisiteUsage {
                daily_count: 3,
                ..usage(1)
            }];
        }),
        ("monthly_count_limit", |t, c, _| {
            t.requisites[0].monthly_count_limit = Some(30);
            c.requisites = vec![RequisiteUsage {
                monthly_count: 30,
                ..usage(1)
            }];
        }),
        ("min_interval", |t, c, _| {
            t.requisites[0].min_interval_secs = 60;
            c.requisites = vec![RequisiteUsage {
                last_order_at: Some(T0 - 59_999),
                ..usage(1)
            }];
        }),
        ("same_amount_open", |_, c, _| {
            c.requisites = vec![RequisiteUsage {
                open_amounts: vec![dec("1.00"), dec("5000.00")],
                ..usage(1)
            }];
        }),
    ];
    for (reason, breaker) in cases {
        let mut t = trader(1, 1, vec![requisite(1)]);
        let mut c = capacity(&t, "1000");
        let mut o = order(1, "5000.00");
        breaker(&mut t, &mut c, &mut o);
        let md = master(vec![t]);
        md.capacities.lock().unwrap().insert(tid(1), c);
        let e = failed(route(&mut RouterProcessor::new(md), o, T0));
        assert_eq!(
            e.reason_code.as_deref(),
            Some("no_eligible_requisite"),
            "{reason}"
        );
        assert_eq!(e.candidates.len(), 1, "{reason}");
        assert_eq!(e.candidates[0].reason_code.as_deref(), Some(reason));
        assert_eq!(e.candidates[0].outcome, CandidateOutcome::Skipped);
    }
}

#[test]
fn without_published_capacity_a_trader_is_skipped() {
    let md = master(vec![trader(1, 1, vec![requisite(1)])]);
    md.capacities.lock().unwrap().clear();
    let e = failed(route(
        &mut RouterProcessor::new(md),
        order(1, "5000.00"),
        T0,
    ));
    assert_eq!(
        e.candidates[0].reason_code.as_deref(),
        Some("no_capacity_published")
    );
}

#[test]
fn limits_are_inclusive_at_their_boundaries() {
    // Each of these is exactly at a limit and still eligible.
    let boundaries: Vec<Breaker> = vec![
        |t, _, _| t.requisites[0].min_amount = dec("5000.00"),
        |t, _, _| t.requisites[0].max_amount = dec("5000.00"),
        |_, c, _| c.free_deposit = dec("54.054054"),
        |t, c, _| {
            t.requisites[0].daily_turnover_limit = Some(dec("10000.00"));
            t.requisites[0].monthly_turnover_limit = Some(dec("10000.00"));
            c.requisites = vec![RequisiteUsage {
                daily_turnover: dec("5000.00"),
                monthly_turnover: dec("5000.00"),
                ..usage(1)
            }];
        },
        |t, c, _| {
            t.requisites[0].daily_count_limit = Some(3);
            t.requisites[0].monthly_count_limit = Some(3);
            c.requisites = vec![RequisiteUsage {
                daily_count: 2,
                monthly_count: 2,
                ..usage(1)
            }];
        },
        |t, c, _| {
            t.requisites[0].min_interval_secs = 60;
            c.requisites = vec![RequisiteUsage {
                last_order_at: Some(T0 - 60_000),
                ..usage(1)
            }];
        },
        |_, c, _| {
            c.requisites = vec![RequisiteUsage {
                open_amounts: vec![dec("4999.99")],
                ..usage(1)
            }];
        },
    ];
    for (n, breaker) in boundaries.into_iter().enumerate() {
        let mut t = trader(1, 1, vec![requisite(1)]);
        let mut c = capacity(&t, "1000");
        let mut o = order(1, "5000.00");
        breaker(&mut t, &mut c, &mut o);
        let md = master(vec![t]);
        md.capacities.lock().unwrap().insert(tid(1), c);
        let out = route(&mut RouterProcessor::new(md), o, T0);
        assert!(matches!(out, Emit::Routed(_)), "boundary {n}: {out:?}");
    }
}

#[test]
fn counters_published_before_the_current_day_or_month_cannot_bind() {
    let mut t = trader(1, 1, vec![requisite(1)]);
    t.requisites[0].daily_count_limit = Some(1);
    t.requisites[0].monthly_count_limit = Some(5);
    let mut c = capacity(&t, "1000");
    c.requisites = vec![RequisiteUsage {
        daily_count: 1,
        monthly_count: 5,
        ..usage(1)
    }];
    let md = master(vec![t]);
    md.capacities.lock().unwrap().insert(tid(1), c);
    let mut p = RouterProcessor::new(md);
    let e = failed(route(&mut p, order(1, "5000.00"), T0 + LONGEST_DAY_MS - 1));
    assert_eq!(
        e.candidates[0].reason_code.as_deref(),
        Some("daily_count_limit")
    );
    let e = failed(route(&mut p, order(2, "5000.00"), T0 + LONGEST_DAY_MS));
    assert_eq!(
        e.candidates[0].reason_code.as_deref(),
        Some("monthly_count_limit")
    );
    assert!(matches!(
        route(&mut p, order(3, "5000.00"), T0 + LONGEST_MONTH_MS),
        Emit::Routed(_)
    ));
}

#[test]
fn lower_priority_value_goes_first() {
    let md = master(vec![
        trader(1, 5, vec![requisite(1)]),
        trader(2, 1, vec![requisite(2)]),
        trader(3, 3, vec![requisite(3)]),
    ]);
    let mut p = RouterProcessor::new(md.clone());
    for n in 0..5 {
        assert_eq!(
            routed(route(&mut p, order(n, "5000.00"), T0)).trader_id,
            tid(2)
        );
    }
    md.traders
        .lock()
        .unwrap()
        .get_mut(&tid(2))
        .unwrap()
        .is_in_work = false;
    assert_eq!(
        routed(route(&mut p, order(9, "5000.00"), T0)).trader_id,
        tid(3)
    );
}

#[test]
fn equal_priority_takes_turns_least_recently_proposed_first() {
    let md = master(vec![
        trader(1, 1, vec![requisite(1), requisite(2)]),
        trader(2, 1, vec![requisite(3)]),
    ]);
    let mut p = RouterProcessor::new(md.clone());
    let picks: Vec<RequisiteId> = (0..6)
        .map(|n| routed(route(&mut p, order(n, "5000.00"), T0)).requisite_id)
        .collect();
    assert_eq!(picks, vec![rid(1), rid(2), rid(3), rid(1), rid(2), rid(3)]);
    // A requisite that joins the pool has never been proposed: it goes next.
    md.traders
        .lock()
        .unwrap()
        .insert(tid(3), trader(3, 1, vec![requisite(4)]));
    md.capacities
        .lock()
        .unwrap()
        .insert(tid(3), capacity(&trader(3, 1, vec![]), "1000"));
    assert_eq!(
        routed(route(&mut p, order(7, "5000.00"), T0)).requisite_id,
        rid(4)
    );
    assert_eq!(
        routed(route(&mut p, order(8, "5000.00"), T0)).requisite_id,
        rid(1)
    );
}

#[test]
fn requisites_of_other_pools_are_not_considered() {
    let mut kzt = requisite(2);
    kzt.fiat_currency = "KZT".into();
    let mut card = requisite(3);
    card.payment_method = "card2card".into();
    let md = master(vec![trader(1, 1, vec![kzt, requisite(1), card])]);
    md.traders
        .lock()
        .unwrap()
        .get_mut(&tid(1))
        .unwrap()
        .is_in_work = false;
    let e = failed(route(
        &mut RouterProcessor::new(md),
        order(1, "5000.00"),
        T0,
    ));
    let listed: Vec<_> = e.candidates.iter().map(|c| c.requisite_id).collect();
    assert_eq!(listed, vec![Some(rid(1))]);
}

#[test]
fn a_refusing_trader_is_excluded_and_the_next_one_proposed() {
    let md = master(vec![
        trader(1, 1, vec![requisite(1)]),
        trader(2, 2, vec![requisite(2)]),
    ]);
    let mut p = RouterProcessor::new(md);
    let first = routed(route(&mut p, order(1, "5000.00"), T0));
    assert_eq!(first.trader_id, tid(1));
    // The trader book sends it back with the trader excluded.
    let mut back = order(1, "5000.00");
    back.excluded_traders = vec![tid(1)];
    back.attempt = 1;
    let second = routed(route(&mut p, back.clone(), T0 + 1));
    assert_eq!((second.trader_id, second.attempt), (tid(2), 1));
    assert_eq!(second.excluded_traders, vec![tid(1)]);
    back.excluded_traders.push(tid(2));
    back.attempt = 2;
    let e = failed(route(&mut p, back, T0 + 2));
    let reasons: Vec<_> = e
        .candidates
        .iter()
        .map(|c| c.reason_code.as_deref())
        .collect();
    assert_eq!(reasons, vec![Some("excluded_after_refusal"); 2]);
}

#[test]
fn a_proposal_lists_every_requisite_and_the_book_reason_of_a_refusal() {
    let md = master(vec![
        trader(1, 1, vec![requisite(1)]),
        trader(2, 2, vec![requisite(2), requisite(3)]),
    ]);
    let mut p = RouterProcessor::new(md);
    let mut back = order(1, "5000.00");
    back.excluded_traders = vec![tid(1), tid(9)];
    back.attempt = 2;
    back.refusals = vec![
        CandidateDecision {
            trader_id: tid(1),
            requisite_id: Some(rid(1)),
            outcome: CandidateOutcome::Refused,
            reason_code: Some("insufficient_deposit".into()),
        },
        // A trader who refused and has left the pool since.
        CandidateDecision {
            trader_id: tid(9),
            requisite_id: Some(rid(9)),
            outcome: CandidateOutcome::Refused,
            reason_code: Some("daily_count_exceeded".into()),
        },
    ];
    let r = routed(route(&mut p, back.clone(), T0));
    assert_eq!((r.trader_id, r.requisite_id), (tid(2), rid(2)));
    assert_eq!(r.expires_at, back.expires_at);
    let listed: Vec<_> = r
        .candidates
        .iter()
        .map(|c| (c.requisite_id, c.outcome, c.reason_code.as_deref()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                Some(rid(1)),
                CandidateOutcome::Refused,
                Some("insufficient_deposit")
            ),
            (Some(rid(2)), CandidateOutcome::Chosen, None),
            (
                Some(rid(3)),
                CandidateOutcome::Skipped,
                Some("not_next_in_turn")
            ),
            (
                Some(rid(9)),
                CandidateOutcome::Refused,
                Some("daily_count_exceeded")
            ),
        ]
    );
}

#[test]
fn attempts_are_capped() {
    let md = master(vec![trader(1, 1, vec![requisite(1)])]);
    let mut p = RouterProcessor::new(md);
    let mut o = order(1, "5000.00");
    o.attempt = MAX_ATTEMPTS - 1;
    assert!(matches!(route(&mut p, o.clone(), T0), Emit::Routed(_)));
    o.attempt = MAX_ATTEMPTS;
    o.excluded_traders = vec![tid(8), tid(9)];
    let e = failed(route(&mut p, o, T0));
    assert_eq!(e.reason_code.as_deref(), Some("too_many_refusals"));
    assert_eq!(e.candidates.len(), 2);
    assert!(e
        .candidates
        .iter()
        .all(|c| c.outcome == CandidateOutcome::Refused));
    assert_eq!(e.candidates[0].trader_id, tid(8));
}

#[test]
fn no_requisite_lists_every_candidate_with_its_reason() {
    let mut t1 = trader(1, 1, vec![requisite(1), requisite(2)]);
    t1.requisites[1].max_amount = dec("1000.00");
    let mut t2 = trader(2, 1, vec![requisite(3)]);
    t2.is_traffic_enabled_by_teamlead = false;
    let t3 = trader(3, 1, vec![requisite(4)]);
    let md = master(vec![t1, t2, t3]);
    md.capacities
        .lock()
        .unwrap()
        .get_mut(&tid(1))
        .unwrap()
        .free_deposit = dec("1");
    md.capacities.lock().unwrap().remove(&tid(3));
    let o = order(1, "5000.00");
    let e = failed(route(&mut RouterProcessor::new(md), o.clone(), T0 + 3));
    assert_eq!(
        e.event_id,
        derived_id(&[o.order_id.0.as_bytes(), b"no_requisite"])
    );
    assert_eq!(
        (e.kind, e.status, e.sequence),
        (OrderEventKind::NoRequisite, OrderStatus::NoRequisite, 2)
    );
    assert_eq!(e.previous_status, Some(OrderStatus::Created));
    assert_eq!((e.order_id, e.store_id), (o.order_id, o.store_id));
    assert_eq!(
        (e.rate, e.crypto_amount),
        (Some(dec("92.5")), Some(dec("54.054054")))
    );
    assert_eq!(e.fiat_amount, Some(dec("5000.00")));
    assert_eq!(e.occurred_at, T0 + 3);
    let listed: Vec<_> = e
        .candidates
        .iter()
        .map(|c| {
            (
                c.trader_id,
                c.requisite_id,
                c.outcome,
                c.reason_code.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                tid(1),
                Some(rid(1)),
                CandidateOutcome::Skipped,
                Some("insufficient_deposit")
            ),
            (
                tid(1),
                Some(rid(2)),
                CandidateOutcome::Skipped,
                Some("above_max_amount")
            ),
            (
                tid(2),
                Some(rid(3)),
                CandidateOutcome::Skipped,
                Some("traffic_disabled_by_team_lead")
            ),
            (
                tid(3),
                Some(rid(4)),
                CandidateOutcome::Skipped,
                Some("no_capacity_published")
            ),
        ]
    );
}

#[test]
fn an_empty_pool_a_missing_rate_and_a_dust_amount_are_reasons_too() {
    let md = master(vec![]);
    let mut p = RouterProcessor::new(md.clone());
    let e = failed(route(&mut p, order(1, "5000.00"), T0));
    assert_eq!(e.reason_code.as_deref(), Some("no_requisite_in_pool"));
    assert!(e.candidates.is_empty());

    md.rates.lock().unwrap().get_mut("RUB").unwrap().rate = dec("1000000000");
    let e = failed(route(&mut p, order(2, "0.01"), T0));
    assert_eq!(e.reason_code.as_deref(), Some("amount_too_small"));

    md.rates.lock().unwrap().get_mut("RUB").unwrap().rate = Decimal::ZERO;
    let e = failed(route(&mut p, order(3, "5000.00"), T0));
    assert_eq!(e.reason_code.as_deref(), Some("no_rate"));
    md.rates.lock().unwrap().clear();
    let e = failed(route(&mut p, order(4, "5000.00"), T0));
    assert_eq!((e.reason_code.as_deref(), e.rate), (Some("no_rate"), None));
}

#[test]
fn each_pool_keeps_its_own_turns() {
    let mut card1 = requisite(3);
    card1.payment_method = "card2card".into();
    let mut card2 = requisite(4);
    card2.payment_method = "card2card".into();
    let md = master(vec![
        trader(1, 1, vec![requisite(1), card1]),
        trader(2, 1, vec![requisite(2), card2]),
    ]);
    let mut p = RouterProcessor::new(md);
    let sbp = |n| order(n, "5000.00");
    let card = |n| OrderScreened {
        pool: "RUB:card2card".into(),
        payment_method: "card2card".into(),
        ..order(n, "5000.00")
    };
    assert_eq!(routed(route(&mut p, sbp(1), T0)).requisite_id, rid(1));
    assert_eq!(routed(route(&mut p, card(2), T0)).requisite_id, rid(3));
    assert_eq!(routed(route(&mut p, sbp(3), T0)).requisite_id, rid(2));
    assert_eq!(routed(route(&mut p, card(4), T0)).requisite_id, rid(4));
    let changes: HashMap<_, _> = p.take_changes().into_iter().collect();
    let mut keys: Vec<_> = changes.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, vec!["RUB:card2card".to_string(), POOL.to_string()]);
}

/// Traders of random priorities with random numbers of requisites.
fn pool_strategy() -> impl Strategy<Value = Vec<(i32, usize)>> {
    proptest::collection::vec((0i32..3, 1usize..4), 1..6)
}

fn build(pool: &[(i32, usize)]) -> Vec<Trader> {
    let mut next = 0;
    pool.iter()
        .enumerate()
        .map(|(t, (priority, count))| {
            let requisites = (0..*count)
                .map(|_| {
                    next += 1;
                    requisite(next)
                })
                .collect();
            trader(t as u128, *priority, requisites)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Among requisites of the best priority, proposals go round: over k rounds each is
    /// proposed exactly k times, once per round; nothing of a worse priority is proposed.
    #[test]
    fn equal_priority_is_served_round_robin(pool in pool_strategy(), rounds in 1usize..6) {
        let traders = build(&pool);
        let best = traders.iter().map(|t| t.priority).min().unwrap();
        let top: Vec<RequisiteId> = traders.iter().filter(|t| t.priority == best)
            .flat_map(|t| t.requisites.iter().map(|r| r.requisite_id)).collect();
        let mut p = RouterProcessor::new(master(traders));
        let mut n = 0;
        for _ in 0..rounds {
            let mut seen = Vec::new();
            for _ in 0..top.len() {
                n += 1;
                let r = routed(route(&mut p, order(n, "5000.00"), T0));
                prop_assert!(top.contains(&r.requisite_id), "worse priority proposed");
                prop_assert!(!seen.contains(&r.requisite_id), "proposed twice in a round");
                seen.push(r.requisite_id);
            }
        }
    }

    /// With random eligibility, the proposal always has the best priority among the eligible,
    /// and is the least recently proposed among those.
    #[test]
    fn the_proposal_is_the_best_eligible(pool in pool_strategy(), orders in proptest::collection::vec((any::<u64>(), 0u64..3), 1..30)) {
        let traders = build(&pool);
        let md = master(traders.clone());
        let mut p = RouterProcessor::new(md.clone());
        let mut last: HashMap<RequisiteId, usize> = HashMap::new();
        for (n, (mask, excluded)) in orders.iter().enumerate() {
            // Switch traders off at random: bit i of mask puts trader i out of work.
            for (i, t) in traders.iter().enumerate() {
                md.traders.lock().unwrap().get_mut(&t.trader_id).unwrap().is_in_work = mask & (1 << i) == 0;
            }
            let mut o = order(n as u128, "5000.00");
            o.excluded_traders = vec![tid(*excluded as u128)];
            let eligible: Vec<&Trader> = traders.iter()
                .filter(|t| mask & (1 << traders.iter().position(|x| x.trader_id == t.trader_id).unwrap()) == 0)
                .filter(|t| t.trader_id != tid(*excluded as u128))
                .collect();
            match route(&mut p, o, T0) {
                Emit::Routed(r) => {
                    let best = eligible.iter().map(|t| t.priority).min();
                    prop_assert!(best.is_some(), "routed with nothing eligible");
                    let chosen = traders.iter().find(|t| t.trader_id == r.trader_id).unwrap();
                    prop_assert_eq!(Some(chosen.priority), best);
                    let expected = eligible.iter().filter(|t| Some(t.priority) == best)
                        .flat_map(|t| t.requisites.iter().map(|q| q.requisite_id))
                        .min_by_key(|id| (last.get(id).copied(), *id)).unwrap();
                    prop_assert_eq!(r.requisite_id, expected);
                    last.insert(r.requisite_id, n);
                }
                Emit::Event(e) => {
                    prop_assert!(eligible.is_empty(), "no requisite while {} eligible", eligible.len());
                    // Every requisite of the pool once, then the refusal of a trader not in it.
                    let total: usize = traders.iter().map(|t| t.requisites.len()).sum();
                    let gone = usize::from(!traders.iter().any(|t| t.trader_id == tid(*excluded as u128)));
                    prop_assert_eq!(e.candidates.len(), total + gone);
                    prop_assert!(e.candidates.iter().all(|c| c.reason_code.is_some()));
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    /// Restoring the exported state answers the next orders exactly as the original.
    #[test]
    fn restore_round_trips(pool in pool_strategy(), first in 0usize..20, next in 1usize..20) {
        let md = master(build(&pool));
        let mut original = RouterProcessor::new(md.clone());
        for n in 0..first {
            route(&mut original, order(n as u128, "5000.00"), T0);
        }
        let mut exported: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        exported.extend(original.take_changes());
        let mut restored = RouterProcessor::new(md as Arc<dyn MasterData>);
        for (key, value) in &exported {
            restored.restore(key, value.as_deref());
        }
        for n in first..first + next {
            let a = route(&mut original, order(n as u128, "5000.00"), T0);
            let b = route(&mut restored, order(n as u128, "5000.00"), T0);
            prop_assert_eq!(a, b);
        }
    }
}
