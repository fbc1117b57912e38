//! What the simulated traffic looks like: how many orders, how fast, and how the people behave.

use std::time::Duration;

/// A pool the stores post pay-ins to, with the range of fiat amounts (whole units).
#[derive(Debug, Clone)]
pub struct Pool {
    pub fiat: &'static str,
    pub method: &'static str,
    pub min: u64,
    pub max: u64,
}

/// The pools of the demo data (`jivapay seed --demo`), amounts well inside every limit.
pub const DEMO_POOLS: &[Pool] = &[
    Pool {
        fiat: "RUB",
        method: "sbp",
        min: 500,
        max: 5_000,
    },
    Pool {
        fiat: "RUB",
        method: "card2card",
        min: 500,
        max: 8_000,
    },
    Pool {
        fiat: "RUB",
        method: "account",
        min: 1_000,
        max: 10_000,
    },
    Pool {
        fiat: "KZT",
        method: "card2card",
        min: 3_000,
        max: 40_000,
    },
    Pool {
        fiat: "KZT",
        method: "account",
        min: 5_000,
        max: 50_000,
    },
];

/// The traffic of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pay-ins the stores post.
    pub orders: u64,
    /// Arrival rate, pay-ins per second (constant: open loop).
    pub rate: f64,
    /// Whether customers act at all (off: only the stores post, to measure the gateway alone).
    pub play_customers: bool,
    /// Share of customers who look at the payment page and never pay.
    pub unpaid_share: f64,
    /// Share of paying customers who confirm through the page's form with a receipt file
    /// (the others use the JSON endpoint).
    pub receipt_share: f64,
    /// Share of traders who confirm late, and how late.
    pub slow_trader_share: f64,
    pub slow_trader_delay: Duration,
    /// How long a customer waits for a requisite before giving up.
    pub customer_patience: Duration,
    /// Prefix of the external order ids (unique per run: a repeat would be the same order).
    pub run_id: String,
    /// Orders in flight (posted, customer not done) beyond which new arrivals are shed and
    /// counted instead of queued: the generator must not hide its own overload.
    pub max_in_flight: usize,
    pub pools: Vec<Pool>,
}

impl Plan {
    /// The demo's mix: one customer in ten never pays, one in four paying customers uploads a
    /// receipt, one trader in three confirms a few seconds late.
    pub fn demo(orders: u64, rate: f64) -> Self {
        Self {
            orders,
            rate,
            play_customers: true,
            unpaid_share: 0.1,
            receipt_share: 0.25,
            slow_trader_share: 0.34,
            slow_trader_delay: Duration::from_secs(3),
            customer_patience: Duration::from_secs(60),
            run_id: format!("demo-{}", uuid::Uuid::new_v4().simple()),
            max_in_flight: 100_000,
            pools: DEMO_POOLS.to_vec(),
        }
    }

    /// The benchmark's mix: every customer pays at once through the JSON endpoint and every
    /// trader confirms as soon as he sees it, so the time measured is the pipeline's.
    pub fn benchmark(orders: u64, rate: f64, run_id: &str) -> Self {
        Self {
            unpaid_share: 0.0,
            receipt_share: 0.0,
            slow_trader_share: 0.0,
            customer_patience: Duration::from_secs(120),
            run_id: run_id.to_owned(),
            ..Self::demo(orders, rate)
        }
    }

    /// How customer `n` behaves.
    pub fn customer(&self, n: u64) -> Customer {
        let roll = unit(n, 1);
        if roll < self.unpaid_share {
            Customer::NeverPays
        } else if unit(n, 2) < self.receipt_share {
            Customer::PaysWithReceipt
        } else {
            Customer::Pays
        }
    }

    /// Pool and amount (a decimal string with cents) of order `n`: spread over the pools and
    /// their ranges so that no two open orders on a requisite share an amount by accident.
    pub fn order(&self, n: u64) -> (&Pool, String) {
        let pool = &self.pools[(n % self.pools.len() as u64) as usize];
        let span = pool.max.saturating_sub(pool.min).max(1);
        let whole = pool.min + mix(n, 3) % span;
        (pool, format!("{whole}.{:02}", mix(n, 4) % 100))
    }

    /// Whether trader `i` (of the signed-in list) is a slow one.
    pub fn is_slow_trader(&self, i: usize) -> bool {
        unit(i as u64, 5) < self.slow_trader_share
    }
}

/// What a customer does once the payment page shows a requisite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Customer {
    NeverPays,
    Pays,
    PaysWithReceipt,
}

/// A deterministic pseudo-random number of (n, stream): splitmix64.
fn mix(n: u64, stream: u64) -> u64 {
    let mut z = n
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(stream.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic number in [0, 1).
fn unit(n: u64, stream: u64) -> f64 {
    (mix(n, stream) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_close_to_the_plan() {
        let plan = Plan::demo(10_000, 100.0);
        let unpaid = (0..10_000)
            .filter(|n| plan.customer(*n) == Customer::NeverPays)
            .count();
        assert!((800..1200).contains(&unpaid), "{unpaid}");
        let bench = Plan::benchmark(1000, 10.0, "b");
        assert!((0..1000).all(|n| bench.customer(n) == Customer::Pays));
    }

    #[test]
    fn amounts_stay_in_their_pool_range() {
        let plan = Plan::demo(1000, 10.0);
        for n in 0..1000 {
            let (pool, amount) = plan.order(n);
            let value: f64 = amount.parse().unwrap();
            assert!(value >= pool.min as f64 && value < pool.max as f64 + 1.0);
        }
    }
}
