//! The open-loop driver: arrivals on a fixed schedule, one task per order playing the store
//! and its customer, one task per trader.

use crate::api::Api;
use crate::plan::{Customer, Plan};
use crate::stats::Progress;
use jivapay_domain::OrderStatus;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The signed-in people of a run.
#[derive(Debug, Clone, Default)]
pub struct Actors {
    /// (store id, API key)
    pub stores: Vec<(String, String)>,
    /// (login, bearer token)
    pub traders: Vec<(String, String)>,
}

/// Signs the merchants in (each of their stores gets a fresh API key) and the traders.
pub async fn sign_in(
    api: &Api,
    merchants: &[String],
    traders: &[String],
    password: &str,
) -> anyhow::Result<Actors> {
    let mut actors = Actors::default();
    for login in merchants {
        let token = api.login("merchant", login, password).await?;
        actors.stores.extend(api.store_keys(&token).await?);
    }
    for login in traders {
        let token = api.login("trader", login, password).await?;
        actors.traders.push((login.clone(), token));
    }
    anyhow::ensure!(!actors.stores.is_empty(), "no store to post pay-ins from");
    Ok(actors)
}

/// What happened to one arrival, as the driver saw it.
#[derive(Debug, Clone)]
pub struct OrderOutcome {
    pub index: u64,
    pub external_order_id: String,
    /// Set when the gateway accepted the pay-in.
    pub order_id: Option<String>,
    /// When the request was due, Unix milliseconds (wall clock: comparable with PostgreSQL's
    /// `now()` on the same machine).
    pub scheduled_at_ms: i64,
    pub customer: Customer,
    pub customer_confirmed: bool,
}

fn unix_ms(at: Instant) -> i64 {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    if at >= now {
        wall + (at - now).as_millis() as i64
    } else {
        wall - (now - at).as_millis() as i64
    }
}

/// Posts `plan.orders` pay-ins at `plan.rate` per second and plays each order's customer;
/// returns when every arrival's customer is done. Traders are separate ([`spawn_traders`]).
pub async fn drive_orders(
    api: &Api,
    actors: &Actors,
    plan: &Plan,
    progress: &Arc<Progress>,
) -> Vec<OrderOutcome> {
    let start = Instant::now() + Duration::from_millis(20);
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(0.001));
    let in_flight = Arc::new(Semaphore::new(plan.max_in_flight.max(1)));
    let mut tasks = Vec::with_capacity(plan.orders as usize);
    for n in 0..plan.orders {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due).await;
        let external = format!("{}-{n}", plan.run_id);
        let customer = plan.customer(n);
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            Progress::add(&progress.shed);
            tasks.push(tokio::spawn(std::future::ready(OrderOutcome {
                index: n,
                external_order_id: external,
                order_id: None,
                scheduled_at_ms: unix_ms(due),
                customer,
                customer_confirmed: false,
            })));
            continue;
        };
        let (api, plan, progress) = (api.clone(), plan.clone(), progress.clone());
        let (_, key) = actors.stores[(n % actors.stores.len() as u64) as usize].clone();
        tasks.push(tokio::spawn(async move {
            let outcome = one_order(&api, &key, &plan, &progress, n, due, external).await;
            drop(permit);
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(outcome) = task.await {
            outcomes.push(outcome);
        }
    }
    outcomes
}

/// The store posts order `n` at `due`; its customer waits for a requisite and acts.
async fn one_order(
    api: &Api,
    key: &str,
    plan: &Plan,
    progress: &Progress,
    n: u64,
    due: Instant,
    external: String,
) -> OrderOutcome {
    let customer = plan.customer(n);
    let mut outcome = OrderOutcome {
        index: n,
        external_order_id: external,
        order_id: None,
        scheduled_at_ms: unix_ms(due),
        customer,
        customer_confirmed: false,
    };
    let (pool, amount) = plan.order(n);
    let created = match api
        .create_payin(
            key,
            &outcome.external_order_id,
            &amount,
            pool.fiat,
            pool.method,
        )
        .await
    {
        Ok(created) => created,
        Err(e) => {
            tracing::debug!(error = %e, "pay-in not accepted");
            Progress::add(&progress.create_failed);
            return outcome;
        }
    };
    progress.create_latency.record(due.elapsed());
    Progress::add(&progress.posted);
    outcome.order_id = Some(created.order_id);
    if !plan.play_customers {
        return outcome;
    }
    let patience = Instant::now() + plan.customer_patience;
    let decided = decision(api, &created.token, patience, progress).await;
    if decided.as_deref() != Some("assigned") {
        Progress::add(&progress.not_assigned);
        return outcome;
    }
    Progress::add(&progress.assigned_seen);
    let confirmed = match customer {
        Customer::NeverPays => {
            Progress::add(&progress.unpaid);
            return outcome;
        }
        Customer::Pays => api.confirm_payment(&created.token).await,
        Customer::PaysWithReceipt => api.confirm_with_receipt(&created.token).await,
    };
    match confirmed {
        Ok(()) => {
            outcome.customer_confirmed = true;
            Progress::add(&progress.customer_confirmed);
            if customer == Customer::PaysWithReceipt {
                Progress::add(&progress.receipts);
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "customer confirmation refused");
            Progress::add(&progress.other_errors);
        }
    }
    outcome
}

/// Follows the payment's event stream (opening it again if the server ends it) until the
/// order leaves `created`: its new status, or `None` if that did not happen by `patience`.
async fn decision(
    api: &Api,
    token: &str,
    patience: Instant,
    progress: &Progress,
) -> Option<String> {
    while Instant::now() < patience {
        let mut events = match api.payment_events(token).await {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(error = %e, "payment stream not opened");
                Progress::add(&progress.other_errors);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            match tokio::time::timeout_at(patience, events.next()).await {
                Err(_) => return None,
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "payment stream broken");
                    Progress::add(&progress.other_errors);
                    break;
                }
                Ok(Some(Ok((_, view)))) => match view["status"].as_str() {
                    Some("created") | None => continue,
                    Some(status) => return Some(status.to_owned()),
                },
            }
        }
    }
    None
}

/// The (order id, status) pairs of a trader stream's event: a `snapshot` lists the open
/// orders, an `order` event one changed order.
fn orders_in(name: &str, data: &serde_json::Value) -> Vec<(String, String)> {
    let pair = |o: &serde_json::Value| {
        Some((
            o["order_id"].as_str()?.to_owned(),
            o["status"].as_str()?.to_owned(),
        ))
    };
    match name {
        "snapshot" => data
            .as_array()
            .map(|orders| orders.iter().filter_map(pair).collect())
            .unwrap_or_default(),
        "order" => pair(data).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// One task per trader until `stop`: follow the trader's order stream and confirm each order
/// its customer confirmed (a slow trader after `plan.slow_trader_delay`).
pub fn spawn_traders(
    api: &Api,
    actors: &Actors,
    plan: &Plan,
    progress: &Arc<Progress>,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    actors
        .traders
        .iter()
        .enumerate()
        .map(|(i, (_, token))| {
            let slow = plan.is_slow_trader(i).then_some(plan.slow_trader_delay);
            let (api, token, progress, stop) =
                (api.clone(), token.clone(), progress.clone(), stop.clone());
            tokio::spawn(async move {
                let mut handled: HashSet<String> = HashSet::new();
                while !stop.is_cancelled() {
                    let opened = tokio::select! {
                        _ = stop.cancelled() => break,
                        opened = api.trader_events(&token) => opened,
                    };
                    let Ok(mut events) = opened else {
                        Progress::add(&progress.other_errors);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    };
                    loop {
                        let next = tokio::select! {
                            _ = stop.cancelled() => break,
                            next = events.next() => next,
                        };
                        let (name, data) = match next {
                            Some(Ok(event)) => event,
                            // Ended by the server (it limits a stream's life) or broken: reopen.
                            None => break,
                            Some(Err(_)) => {
                                Progress::add(&progress.other_errors);
                                break;
                            }
                        };
                        let orders = orders_in(&name, &data);
                        if name == "snapshot" {
                            let listed: HashSet<&String> =
                                orders.iter().map(|(id, _)| id).collect();
                            handled.retain(|id| listed.contains(id));
                        }
                        for (order_id, status) in orders {
                            if status != OrderStatus::ClientConfirmed.as_str() {
                                if !OrderStatus::name_in(&status, OrderStatus::WITH_TRADER) {
                                    handled.remove(&order_id);
                                }
                                continue;
                            }
                            if !handled.insert(order_id.clone()) {
                                continue;
                            }
                            let (api, token, progress) =
                                (api.clone(), token.clone(), progress.clone());
                            tokio::spawn(async move {
                                if let Some(delay) = slow {
                                    tokio::time::sleep(delay).await;
                                }
                                match api.trader_confirm(&token, &order_id).await {
                                    Ok(()) => Progress::add(&progress.trader_confirmed),
                                    Err(_) => Progress::add(&progress.other_errors),
                                }
                            });
                        }
                    }
                }
            })
        })
        .collect()
}
