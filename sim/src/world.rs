//! The world a seed makes: stores with their commissions, traders with requisites in three
//! pools, rates, the settings the processors read, the deposits, and the traffic's pace —
//! sized so that deposits sometimes run short (refusals, no requisite) without starving
//! every order.

use crate::master::{setting, Change};
use crate::rng::Rng;
use jivapay_domain::{FiatAmount, RequisiteId, StoreId, TraderId};
use jivapay_schemas::records::{
    Direction, ModerationStatus, Rate, Requisite, RequisiteKind, SettingType, Store,
    StoreCommission, Trader, TraderCommission,
};
use rust_decimal::Decimal;
use uuid::Uuid;

/// 2026-03-01T20:40:00Z: twenty minutes before midnight in Moscow, the default zone of the
/// daily limits, so every run crosses a day.
pub const START: i64 = 1_772_397_600_000;

/// A pool of requisites: fiat currency and payment method, and the amounts stores ask for.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    pub fiat: &'static str,
    pub method: &'static str,
    /// Order amounts, whole units of fiat.
    pub min: i64,
    pub max: i64,
    /// Fiat per USDT at the start.
    pub rate: i64,
}

pub const POOLS: [Pool; 3] = [
    Pool {
        fiat: "RUB",
        method: "sbp",
        min: 500,
        max: 20_000,
        rate: 92,
    },
    Pool {
        fiat: "RUB",
        method: "card",
        min: 1_000,
        max: 20_000,
        rate: 92,
    },
    Pool {
        fiat: "KZT",
        method: "kaspi",
        min: 2_000,
        max: 16_000,
        rate: 480,
    },
];

/// What a seed made.
pub struct World {
    pub stores: Vec<Store>,
    pub traders: Vec<Trader>,
    /// Customers per store (the fraud velocity rules count per customer).
    pub customers: u32,
    /// Mean time between two orders.
    pub arrival_mean_ms: f64,
    /// The first deposit of each trader, in the order of `traders`.
    pub deposits: Vec<Decimal>,
    pub payment_window_secs: i64,
    pub confirmation_timeout_secs: i64,
}

fn id(rng: &mut Rng) -> Uuid {
    Uuid::from_u128((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
}

/// A percentage with two places between `lo` and `hi` hundredths.
fn percent(rng: &mut Rng, lo: i64, hi: i64) -> Decimal {
    Decimal::new(rng.range(lo, hi), 2)
}

fn fiat(whole: i64) -> FiatAmount {
    FiatAmount::rounded(Decimal::from(whole))
}

impl World {
    pub fn new(rng: &mut Rng) -> World {
        let stores = (0..rng.range(2, 4)).map(|n| store(rng, n)).collect();
        let traders: Vec<Trader> = (0..rng.range(6, 14)).map(|_| trader(rng)).collect();
        let arrival_mean_ms = rng.range(100, 400) as f64;
        let payment_window_secs = rng.range(60, 150);
        let confirmation_timeout_secs = rng.range(60, 120);
        // About what the open orders hold at once (orders per second × seconds held × mean
        // USDT), times a factor from scarce to plenty.
        let held = 1000.0 / arrival_mean_ms * (payment_window_secs as f64 * 0.7) * 70.0;
        let factor = rng.range(50, 160) as f64 / 100.0;
        let each = (held * factor / traders.len() as f64).max(200.0) as i64;
        let deposits = traders
            .iter()
            .map(|_| Decimal::new(rng.range(each / 3, each * 2) * 1_000_000, 6))
            .collect();
        World {
            stores,
            traders,
            customers: rng.range(20, 200) as u32,
            arrival_mean_ms,
            deposits,
            payment_window_secs,
            confirmation_timeout_secs,
        }
    }

    /// The master data at the start, as the outbox would have published it.
    pub fn initial(&self, at: i64) -> Vec<Change> {
        let mut out: Vec<Change> = Vec::new();
        out.extend(self.stores.iter().cloned().map(Change::Store));
        out.extend(self.traders.iter().cloned().map(Change::Trader));
        for pool in POOLS.iter().filter(|p| p.method != "card") {
            out.push(Change::Rate(rate(pool.fiat, Decimal::from(pool.rate), at)));
        }
        let integer = |key: &str, v: i64| {
            Change::Setting(setting(key, SettingType::Integer, v.to_string(), at))
        };
        out.push(integer(
            "orders.payment_window_secs",
            self.payment_window_secs,
        ));
        out.push(integer(
            "orders.trader_confirmation_timeout_secs",
            self.confirmation_timeout_secs,
        ));
        out.push(Change::Setting(setting(
            "fraud.review_threshold",
            SettingType::Decimal,
            "\"18000.00\"".into(),
            at,
        )));
        out
    }

    pub fn store_ids(&self) -> Vec<StoreId> {
        self.stores.iter().map(|s| s.store_id).collect()
    }

    pub fn trader_ids(&self) -> Vec<TraderId> {
        self.traders.iter().map(|t| t.trader_id).collect()
    }
}

pub fn rate(fiat: &str, rate: Decimal, at: i64) -> Rate {
    Rate {
        fiat_currency: fiat.to_owned(),
        rate: rate.round_dp(8),
        source: "sim".into(),
        observed_at: at,
    }
}

fn store(rng: &mut Rng, n: i64) -> Store {
    Store {
        store_id: StoreId(id(rng)),
        merchant_id: id(rng),
        name: format!("store {n}"),
        is_enabled: true,
        callback_url: None,
        commissions: POOLS
            .iter()
            .map(|p| StoreCommission {
                payment_method: p.method.into(),
                direction: Direction::PayIn,
                percent: percent(rng, 300, 700),
            })
            .collect(),
        updated_at: START,
    }
}

fn trader(rng: &mut Rng) -> Trader {
    let trader_id = TraderId(id(rng));
    let requisites: Vec<Requisite> = (0..rng.range(1, 3)).map(|_| requisite(rng)).collect();
    let mut methods: Vec<&str> = requisites
        .iter()
        .map(|r| r.payment_method.as_str())
        .collect();
    methods.sort();
    methods.dedup();
    let commissions = methods
        .into_iter()
        .map(|m| TraderCommission {
            payment_method: m.into(),
            direction: Direction::PayIn,
            percent: percent(rng, 100, 300),
        })
        .collect();
    Trader {
        trader_id,
        team_id: None,
        priority: rng.range(1, 3) as i32,
        is_active: true,
        is_in_work: true,
        is_traffic_enabled_by_teamlead: true,
        commissions,
        requisites,
        updated_at: START,
    }
}

fn requisite(rng: &mut Rng) -> Requisite {
    let pool = *rng.pick(&POOLS);
    let limited = |rng: &mut Rng, p: f64| rng.chance(p);
    Requisite {
        requisite_id: RequisiteId(id(rng)),
        payment_method: pool.method.into(),
        fiat_currency: pool.fiat.into(),
        bank_code: None,
        kind: RequisiteKind::Phone,
        number_masked: "+7 *** ** 00".into(),
        holder_name: "Sim Trader".into(),
        pay_in_enabled: !rng.chance(0.04),
        pay_out_enabled: false,
        min_amount: fiat(pool.min),
        max_amount: fiat(if rng.chance(0.2) {
            pool.max / 2
        } else {
            pool.max
        }),
        daily_turnover_limit: limited(rng, 0.2).then(|| fiat(rng.range(100, 400) * 1000)),
        monthly_turnover_limit: None,
        daily_count_limit: limited(rng, 0.3).then(|| rng.range(15, 60) as i32),
        monthly_count_limit: None,
        min_interval_secs: if rng.chance(0.3) {
            rng.range(2, 20) as i32
        } else {
            0
        },
        moderation_status: if rng.chance(0.04) {
            ModerationStatus::Pending
        } else {
            ModerationStatus::Approved
        },
        is_active: true,
    }
}

/// An order amount of `pool`: mostly with kopecks, sometimes round (round amounts collide, and
/// two open orders of one amount on one requisite are refused).
pub fn amount(rng: &mut Rng, pool: &Pool) -> FiatAmount {
    if rng.chance(0.3) {
        let hundreds = rng.range(pool.min / 100, pool.max / 100);
        fiat(hundreds * 100)
    } else {
        let cents = rng.range(pool.min * 100, pool.max * 100);
        FiatAmount::rounded(Decimal::new(cents, 2))
    }
}
