//! Stores, customers, traders, support staff and the admin, and the HTTP edges between them
//! and the log.
//!
//! - The gateway accepts a pay-in (`OrderRequested` as `ingest/src/gateway/create.rs` writes
//!   it: the order id derived from store and external id, `expires_at` = request time + the
//!   payment window setting) and produces it; a store sometimes posts the same order again.
//! - Each order gets a plan when it is placed: what its customer does once the page shows the
//!   requisite (pays and confirms, confirms just before the deadline, too late, or never),
//!   what its trader does once the customer confirmed (confirms, confirms racing the timeout,
//!   reports non-payment, lapses) or even before (confirms at once), whether support cancels.
//!   People learn what happened from the order events, a little later.
//! - A command edge (payment page, trader API) stamps `issued_at` when it accepts a command
//!   and answers 202 only if the broker took it within `COMMAND_ACCEPT_BOUND_MS`
//!   (`platform/src/trader_commands.rs`); the append takes a random time, now and then longer
//!   than the bound — a 503, and the person tries again with the same command id. The page
//!   refuses a confirmation stamped at or after the deadline (409): the check is the
//!   server's (`ingest/src/payment_page/confirm.rs`), so no such command is ever sent.
//! - The admin's outbox puts deposits (and the traders' withdrawals) on `trader.commands`
//!   as the demo seeder and the benchmark do.

use crate::observe::Seen;
use crate::queue::{Action, Event};
use crate::sim::Env;
use crate::topics::Record;
use crate::world::{amount, POOLS};
use jivapay_domain::{OrderId, StoreId, TraderId, UsdtAmount};
use jivapay_platform::trader_commands::COMMAND_ACCEPT_BOUND_MS;
use jivapay_schemas::records::{
    Direction, OrderRequested, OrderStatus, TraderCommand, TraderCommandKind,
};
use jivapay_schemas::topics::{ORDERS_REQUESTED, TRADER_COMMANDS};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::rc::Rc;
use uuid::Uuid;

/// The namespace of the simulation's own command ids (deposits).
const SIM_NAMESPACE: Uuid = Uuid::from_u128(0x5a1d_0c0d_e000_4000_8000_0000_0000_0051);

#[derive(Debug, Clone, Copy)]
pub enum CustomerPlan {
    Pays { after_ms: i64 },
    AtDeadline { before_ms: i64 },
    Late { after_ms: i64 },
    Never,
}

#[derive(Debug, Clone, Copy)]
pub enum TraderPlan {
    Confirms { after_ms: i64 },
    RacesTimeout { before_ms: i64 },
    Reports { after_ms: i64 },
    Lapses,
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub customer: CustomerPlan,
    pub trader: TraderPlan,
    /// The trader confirms as soon as the order is assigned, this long after.
    pub trader_first: Option<i64>,
    pub cancel_after: Option<i64>,
    pub double_click: bool,
}

/// An order the gateway accepted.
#[derive(Debug, Clone)]
pub struct Placed {
    pub order: OrderId,
    pub store: StoreId,
    pub requested_at: i64,
    pub expires_at: i64,
    pub plan: Plan,
}

/// A command the edge answered 202, with the deadline its sender could see.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub order: OrderId,
    pub kind: TraderCommandKind,
    pub issued_at: i64,
    pub deadline: Option<i64>,
}

/// Who is waiting for an edge's answer.
#[derive(Debug, Clone)]
pub struct Ack {
    pub command: TraderCommand,
    pub deadline: Option<i64>,
    pub took_ms: i64,
    pub attempt: u32,
}

#[derive(Default)]
pub struct People {
    pub placed: Vec<Placed>,
    pub by_id: HashMap<OrderId, usize>,
    pub accepted: Vec<Accepted>,
    /// Deposits the admin issued, per trader.
    pub deposits_issued: HashMap<TraderId, Decimal>,
    pub deposit_count: u64,
    /// Commands refused by the page before reaching the edge (409).
    pub refused_by_page: u64,
    /// 503 answers.
    pub unavailable: u64,
    /// The payment page's and the trader API's clock offsets.
    pub page_skew: i64,
    pub api_skew: i64,
}

fn draw_plan(env: &mut Env) -> Plan {
    let rng = &mut env.people_rng;
    let window = env.world.payment_window_secs * 1000;
    let timeout = env.world.confirmation_timeout_secs * 1000;
    let customer = match rng.range(0, 99) {
        0..=54 => CustomerPlan::Pays {
            after_ms: rng.range(2_000, window * 4 / 5),
        },
        55..=66 => CustomerPlan::AtDeadline {
            before_ms: rng.range(1, 3_000),
        },
        67..=74 => CustomerPlan::Late {
            after_ms: rng.range(0, 20_000),
        },
        _ => CustomerPlan::Never,
    };
    let trader = match rng.range(0, 99) {
        0..=64 => TraderPlan::Confirms {
            after_ms: rng.range(1_000, timeout * 9 / 10),
        },
        65..=72 => TraderPlan::RacesTimeout {
            before_ms: rng.range(1, 3_000),
        },
        73..=82 => TraderPlan::Reports {
            after_ms: rng.range(1_000, 30_000),
        },
        _ => TraderPlan::Lapses,
    };
    Plan {
        customer,
        trader,
        trader_first: rng.chance(0.06).then(|| rng.range(1_000, window)),
        cancel_after: rng.chance(0.03).then(|| rng.range(1_000, window)),
        double_click: rng.chance(0.1),
    }
}

/// A store posts a pay-in; the gateway accepts it and produces `orders.requested`.
pub fn place_order(env: &mut Env, n: u64) {
    let rng = &mut env.traffic_rng;
    let store = env.world.stores[rng.index(env.world.stores.len())].store_id;
    let pool = POOLS[rng.index(POOLS.len())];
    let fiat = amount(rng, &pool);
    let customer = rng
        .chance(0.8)
        .then(|| format!("customer-{}", rng.below(u64::from(env.world.customers))));
    let external_order_id = format!("sim-{n}");
    let order = OrderId::derive(store, &external_order_id);
    let requested_at = env.now;
    let expires_at = requested_at + env.world.payment_window_secs * 1000;
    let record = OrderRequested {
        order_id: order,
        store_id: store,
        external_order_id,
        direction: Direction::PayIn,
        fiat_amount: Some(fiat),
        fiat_currency: pool.fiat.into(),
        payment_method: pool.method.into(),
        customer_id: customer,
        callback_url: None,
        success_url: None,
        fail_url: None,
        payment_token: format!("tok-{n}"),
        expires_at: Some(expires_at),
        requested_at,
    };
    let record = Rc::new(Record {
        key: env.registry.encode_key(&store.to_string()),
        payload: Some(env.registry.encode(&record).expect("an order encodes")),
        origin: None,
    });
    let partition = crate::codec::partition_of(ORDERS_REQUESTED, &record.key);
    let delay = env.traffic_rng.range(1, 30);
    env.append_later(delay, ORDERS_REQUESTED, partition, record.clone(), None);
    if env.traffic_rng.chance(0.03) {
        // The store did not see the answer and posts the same order again.
        let again = env.traffic_rng.range(1_000, 10_000);
        env.append_later(again, ORDERS_REQUESTED, partition, record, None);
    }
    let plan = draw_plan(env);
    env.people.by_id.insert(order, env.people.placed.len());
    env.people.placed.push(Placed {
        order,
        store,
        requested_at,
        expires_at,
        plan,
    });
}

/// What people do when they learn of an event (through the projection, a moment later).
pub fn on_seen(env: &mut Env, seen: Seen) {
    let lag = env.people_rng.range(50, 1_500);
    let at = env.now + lag;
    match seen {
        Seen::Assigned {
            order,
            trader,
            expires_at,
        } => {
            let Some(plan) = env
                .people
                .by_id
                .get(&order)
                .map(|i| env.people.placed[*i].plan)
            else {
                return;
            };
            let deadline = expires_at.unwrap_or(at);
            let customer_at = match plan.customer {
                CustomerPlan::Pays { after_ms } => Some(at + after_ms),
                CustomerPlan::AtDeadline { before_ms } => Some((deadline - before_ms).max(at)),
                CustomerPlan::Late { after_ms, .. } => Some(deadline.max(at) + after_ms),
                CustomerPlan::Never => None,
            };
            if let Some(when) = customer_at {
                env.schedule_at(
                    when,
                    Event::Act(Action::Customer {
                        order,
                        trader,
                        expires_at: deadline,
                        attempt: 0,
                    }),
                );
            }
            if let Some(after) = plan.trader_first {
                env.schedule_at(
                    at + after,
                    Event::Act(Action::Trader {
                        order,
                        trader,
                        kind: TraderCommandKind::TraderConfirmed,
                        // Not checked: the customer may confirm meanwhile, and the confirmation
                        // timeout then in force can end before the payment window.
                        deadline: None,
                        attempt: 0,
                    }),
                );
            }
            if let Some(after) = plan.cancel_after {
                env.schedule_at(at + after, Event::Act(Action::Staff { order, trader }));
            }
        }
        Seen::ClientConfirmed {
            order,
            trader,
            expires_at,
        } => {
            let Some(plan) = env
                .people
                .by_id
                .get(&order)
                .map(|i| env.people.placed[*i].plan)
            else {
                return;
            };
            let deadline = expires_at.unwrap_or(at);
            let (when, kind) = match plan.trader {
                TraderPlan::Confirms { after_ms } => {
                    (at + after_ms, TraderCommandKind::TraderConfirmed)
                }
                TraderPlan::RacesTimeout { before_ms } => (
                    (deadline - before_ms).max(at),
                    TraderCommandKind::TraderConfirmed,
                ),
                TraderPlan::Reports { after_ms } => {
                    (at + after_ms, TraderCommandKind::ReportNonPayment)
                }
                TraderPlan::Lapses => return,
            };
            env.schedule_at(
                when,
                Event::Act(Action::Trader {
                    order,
                    trader,
                    kind,
                    deadline: expires_at,
                    attempt: 0,
                }),
            );
        }
    }
}

/// A person acts.
pub fn act(env: &mut Env, action: Action) {
    match action {
        Action::Customer {
            order,
            trader,
            expires_at,
            attempt,
        } => customer(env, order, trader, expires_at, attempt),
        Action::Trader {
            order,
            trader,
            kind,
            deadline,
            attempt,
        } => {
            let issued_at = env.now + env.people.api_skew;
            let command = jivapay_core::trader_commands::from_trader(
                order.0, trader.0, kind, trader.0, None, issued_at,
            );
            send(env, command, deadline, attempt);
        }
        Action::Staff { order, trader } => {
            let status = env.observer.orders.get(&order).and_then(|v| v.status());
            if status != Some(OrderStatus::Assigned) {
                return; // support cancels only what nobody claims to have paid
            }
            let issued_at = env.now + env.people.api_skew;
            let staff = Uuid::from_u128(0x57af);
            let command = jivapay_core::trader_commands::from_trader(
                order.0,
                trader.0,
                TraderCommandKind::CancelOrder,
                staff,
                Some("support".into()),
                issued_at,
            );
            send(env, command, None, 0);
        }
    }
}

fn customer(env: &mut Env, order: OrderId, trader: TraderId, expires_at: i64, attempt: u32) {
    let plan = env
        .people
        .by_id
        .get(&order)
        .map(|i| env.people.placed[*i].plan);
    let issued_at = env.now + env.people.page_skew;
    let status = env.observer.orders.get(&order).and_then(|v| v.status());
    let payable = status.is_some_and(|s| OrderStatus::AWAITING_PAYMENT.contains(&s));
    if issued_at >= expires_at || !payable {
        env.people.refused_by_page += 1; // 409: the payment window has closed
        return;
    }
    let command =
        jivapay_core::trader_commands::client_confirmed(order.0, trader.0, None, issued_at);
    send(env, command.clone(), Some(expires_at), attempt);
    if attempt == 0 && plan.is_some_and(|p| p.double_click) {
        let again = env.people_rng.range(100, 600);
        env.schedule_at(
            env.now + again,
            Event::Act(Action::Customer {
                order,
                trader,
                expires_at,
                attempt: 1,
            }),
        );
    }
}

/// The command edge: the broker takes the command after a while; 202 within the bound.
fn send(env: &mut Env, command: TraderCommand, deadline: Option<i64>, attempt: u32) {
    let rng = &mut env.people_rng;
    let took_ms = match rng.range(0, 99) {
        0..=84 => rng.range(1, 100),
        85..=97 => rng.range(100, COMMAND_ACCEPT_BOUND_MS),
        _ => rng.range(COMMAND_ACCEPT_BOUND_MS + 1, COMMAND_ACCEPT_BOUND_MS + 4_000),
    };
    let record = Rc::new(Record {
        key: env.registry.encode_key(&command.trader_id.to_string()),
        payload: Some(env.registry.encode(&command).expect("a command encodes")),
        origin: None,
    });
    let partition = crate::codec::partition_of(TRADER_COMMANDS, &record.key);
    let ack = Ack {
        command,
        deadline,
        took_ms,
        attempt,
    };
    env.append_later(took_ms, TRADER_COMMANDS, partition, record, Some(ack));
}

/// The broker took a command: the edge answers.
pub fn acked(env: &mut Env, ack: Ack) {
    let command = &ack.command;
    if ack.took_ms <= COMMAND_ACCEPT_BOUND_MS {
        if let Some(order) = command.order_id {
            env.people.accepted.push(Accepted {
                order,
                kind: command.kind,
                issued_at: command.issued_at,
                deadline: ack.deadline,
            });
        }
        return;
    }
    // 503: in the log all the same, perhaps after a timer it raced; the person tries again.
    env.people.unavailable += 1;
    if ack.attempt >= 3 {
        return;
    }
    let retry = env.now + env.people_rng.range(500, 3_000);
    let (order, trader) = (command.order_id, command.trader_id);
    let action = match (command.kind, order) {
        (TraderCommandKind::ClientConfirmed, Some(order)) => Action::Customer {
            order,
            trader,
            expires_at: ack.deadline.unwrap_or(retry),
            attempt: ack.attempt + 1,
        },
        (TraderCommandKind::TraderConfirmed | TraderCommandKind::ReportNonPayment, Some(order)) => {
            Action::Trader {
                order,
                trader,
                kind: command.kind,
                deadline: ack.deadline,
                attempt: ack.attempt + 1,
            }
        }
        _ => return,
    };
    env.schedule_at(retry, Event::Act(action));
}

/// The admin's outbox puts a deposit on `trader.commands` (at least once: now and then twice).
pub fn deposit(env: &mut Env, trader: TraderId, amount: Decimal) {
    env.people.deposit_count += 1;
    let n = env.people.deposit_count;
    let command = TraderCommand {
        command_id: Uuid::new_v5(&SIM_NAMESPACE, format!("{trader}:deposit:{n}").as_bytes()),
        trader_id: trader,
        order_id: None,
        kind: TraderCommandKind::Deposit,
        amount: Some(UsdtAmount::rounded(amount)),
        resolution: None,
        receipt_key: None,
        actor_id: None,
        actor_role: Some("system".into()),
        reason: Some("simulated deposit".into()),
        issued_at: env.now,
    };
    *env.people.deposits_issued.entry(trader).or_default() += amount;
    let record = Rc::new(Record {
        key: env.registry.encode_key(&trader.to_string()),
        payload: Some(env.registry.encode(&command).expect("a deposit encodes")),
        origin: None,
    });
    let partition = crate::codec::partition_of(TRADER_COMMANDS, &record.key);
    let delay = env.admin_rng.range(1, 500);
    env.append_later(delay, TRADER_COMMANDS, partition, record.clone(), None);
    if env.admin_rng.chance(0.05) {
        let again = env.admin_rng.range(100, 3_000);
        env.append_later(again, TRADER_COMMANDS, partition, record, None);
    }
}

/// A trader tops up his deposit, or asks to withdraw some of it.
pub fn top_up(env: &mut Env) {
    let traders = env.world.trader_ids();
    let trader = traders[env.admin_rng.index(traders.len())];
    if env.admin_rng.chance(0.8) {
        let amount = Decimal::new(env.admin_rng.range(100, 3_000), 0);
        deposit(env, trader, amount);
        return;
    }
    let issued_at = env.now + env.people.api_skew;
    let amount = UsdtAmount::rounded(Decimal::new(
        env.admin_rng.range(10_000_000, 300_000_000),
        6,
    ));
    let mut command = jivapay_core::trader_commands::from_trader(
        Uuid::nil(),
        trader.0,
        TraderCommandKind::Withdraw,
        trader.0,
        None,
        issued_at,
    );
    command.order_id = None;
    command.amount = Some(amount);
    command.command_id = Uuid::new_v5(
        &SIM_NAMESPACE,
        format!("{trader}:withdraw:{issued_at}").as_bytes(),
    );
    send(env, command, None, 0);
}
