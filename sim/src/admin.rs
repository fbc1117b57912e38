//! The admin and the team leads change master data while orders are in flight: a team lead
//! switches a trader's traffic off and on, a trader goes out of work and back, a requisite is
//! deactivated, rates move, the payment window and the confirmation timeout change, store and
//! trader commissions change. Each change reaches every processor's tables at once (one
//! ordered log of changes, `master.rs`); `trader.capacity` follows its topic.

use crate::master::{setting, Change};
use crate::sim::Env;
use crate::world::{rate, POOLS};
use jivapay_schemas::records::{SettingType, TraderCapacity};
use jivapay_schemas::topics::TRADER_CAPACITY;
use rust_decimal::Decimal;

/// One master-data change, drawn from the admin's stream.
pub fn change(env: &mut Env) {
    let at = env.now;
    let rng = &mut env.admin_rng;
    let change = match rng.range(0, 99) {
        0..=29 => {
            let t = rng.index(env.world.traders.len());
            let trader = &mut env.world.traders[t];
            if rng.chance(0.5) {
                trader.is_traffic_enabled_by_teamlead = !trader.is_traffic_enabled_by_teamlead;
            } else {
                trader.is_in_work = !trader.is_in_work;
            }
            trader.updated_at = at;
            Change::Trader(trader.clone())
        }
        30..=44 => {
            let t = rng.index(env.world.traders.len());
            let trader = &mut env.world.traders[t];
            let r = rng.index(trader.requisites.len());
            trader.requisites[r].is_active = !trader.requisites[r].is_active;
            trader.updated_at = at;
            Change::Trader(trader.clone())
        }
        45..=59 => {
            let pool = POOLS[rng.index(POOLS.len())];
            let moved = Decimal::from(pool.rate) * Decimal::new(1000 + rng.range(-30, 30), 3);
            Change::Rate(rate(pool.fiat, moved, at))
        }
        60..=69 => {
            let secs = rng.range(60, 240);
            env.world.payment_window_secs = secs;
            Change::Setting(setting(
                "orders.payment_window_secs",
                SettingType::Integer,
                secs.to_string(),
                at,
            ))
        }
        70..=79 => {
            let secs = rng.range(60, 150);
            env.world.confirmation_timeout_secs = secs;
            Change::Setting(setting(
                "orders.trader_confirmation_timeout_secs",
                SettingType::Integer,
                secs.to_string(),
                at,
            ))
        }
        80..=89 => {
            let s = rng.index(env.world.stores.len());
            let store = &mut env.world.stores[s];
            let c = rng.index(store.commissions.len());
            store.commissions[c].percent = Decimal::new(rng.range(300, 700), 2);
            store.updated_at = at;
            Change::Store(store.clone())
        }
        _ => {
            let t = rng.index(env.world.traders.len());
            let trader = &mut env.world.traders[t];
            if trader.commissions.is_empty() {
                return;
            }
            let c = rng.index(trader.commissions.len());
            trader.commissions[c].percent = Decimal::new(rng.range(100, 300), 2);
            trader.updated_at = at;
            Change::Trader(trader.clone())
        }
    };
    env.push_master(change);
}

/// The capacity table reader: every record of `trader.capacity` past its positions.
pub fn read_capacity(env: &mut Env) {
    for partition in 0..env.table_positions.len() {
        let position = env.table_positions[partition];
        let log = env.topics.log(TRADER_CAPACITY, partition as i32);
        let records: Vec<(i64, Vec<u8>)> = log
            .from(position)
            .iter()
            .filter_map(|(o, r)| r.payload.clone().map(|p| (*o, p)))
            .collect();
        let end = log.end();
        env.table_positions[partition] = end;
        for (offset, payload) in records {
            match env.registry.decode::<TraderCapacity>(&payload) {
                Ok(capacity) => env.push_master(Change::Capacity(capacity)),
                Err(e) => env.finding((
                    "decodable",
                    format!("{TRADER_CAPACITY}/{partition} offset {offset}: {e}"),
                )),
            }
        }
    }
}
