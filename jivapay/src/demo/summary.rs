//! The end of the demo: orders by final state, balances per store, trader and platform, and
//! the checks that the journal is balanced and agrees with the order projection.

use super::progress::{counts, final_count};
use jivapay_loadgen::{OrderOutcome, Percentiles, Progress};
use rust_decimal::Decimal;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Waits (bounded) until the demo traders' deposits are in the ledger: only then can the
/// router assign orders. A moment more lets their capacity reach the router.
pub async fn wait_for_deposits(
    pool: &sqlx::PgPool,
    traders: usize,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let deposits: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ledger_transfers WHERE kind = 'deposit'")
                .fetch_one(pool)
                .await?;
        if deposits >= traders as i64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the traders' deposits did not reach the ledger within 90 s ({deposits} of {traders})"
        );
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// Waits until every accepted order of the run is final and every completed one journaled,
/// or `limit` passes; says whether everything settled. PostgreSQL may be away meanwhile (the
/// pipeline rides out its outages, and so does the demo): a failed look is tried again.
pub async fn wait_until_final(
    pool: &sqlx::PgPool,
    run_id: &str,
    accepted: usize,
    limit: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        let by_status = counts(pool, run_id).await;
        let final_count = final_count(&by_status);
        let completed = by_status.get("completed").copied().unwrap_or(0);
        let journaled: Option<i64> = sqlx::query_scalar(
            "SELECT count(*) FROM ledger_transfers t JOIN orders o ON o.id = t.order_id
             WHERE t.kind = 'pay_in' AND o.external_order_id LIKE $1 || '-%'",
        )
        .bind(run_id)
        .fetch_one(pool)
        .await
        .ok();
        if final_count >= accepted as i64 && journaled.is_some_and(|j| j >= completed) {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One check of the books.
struct Check {
    what: String,
    ok: bool,
    detail: String,
}

pub struct Summary {
    by_status: Vec<(String, i64)>,
    accepted: usize,
    driver: Vec<(&'static str, u64)>,
    gateway: Percentiles,
    /// (owner kind, owner, account kind, currency, balance)
    balances: Vec<(String, String, String, String, Decimal)>,
    checks: Vec<Check>,
}

impl Summary {
    pub async fn load(
        pool: &sqlx::PgPool,
        run_id: &str,
        progress: &Progress,
        outcomes: &[OrderOutcome],
    ) -> anyhow::Result<Self> {
        let by_status = counts(pool, run_id).await.into_iter().collect();
        let driver = vec![
            ("pay-ins accepted", Progress::get(&progress.posted)),
            (
                "pay-ins refused or failed",
                Progress::get(&progress.create_failed),
            ),
            ("customers who never paid", Progress::get(&progress.unpaid)),
            (
                "customers who confirmed",
                Progress::get(&progress.customer_confirmed),
            ),
            (
                "… with a receipt uploaded",
                Progress::get(&progress.receipts),
            ),
            (
                "trader confirmations",
                Progress::get(&progress.trader_confirmed),
            ),
            (
                "orders never assigned",
                Progress::get(&progress.not_assigned),
            ),
            ("other refused calls", Progress::get(&progress.other_errors)),
        ];
        let balances = sqlx::query_as(
            "SELECT a.owner_kind, coalesce(s.name, u.login, 'platform'), a.kind, a.currency, b.balance
             FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
             LEFT JOIN stores s ON s.id = a.store_id
             LEFT JOIN traders t ON t.id = a.trader_id LEFT JOIN users u ON u.id = t.user_id
             WHERE a.owner_kind IN ('store', 'trader', 'platform')
             ORDER BY 1 DESC, 2, 3, 4",
        )
        .fetch_all(pool)
        .await?;
        Ok(Self {
            by_status,
            accepted: outcomes.iter().filter(|o| o.order_id.is_some()).count(),
            driver,
            gateway: Percentiles::of(&progress.create_latency.snapshot()),
            balances,
            checks: checks(pool).await?,
        })
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn render(&self, settled: bool) -> String {
        let mut out =
            String::from("\n=== JivaPay demo: summary ===\n\nOrders by final state (this run):\n");
        for (status, n) in &self.by_status {
            writeln!(out, "  {status:<18} {n:>7}").ok();
        }
        let projected: i64 = self.by_status.iter().map(|(_, n)| n).sum();
        if projected < self.accepted as i64 {
            writeln!(
                out,
                "  {:<18} {:>7}",
                "not yet projected",
                self.accepted as i64 - projected
            )
            .ok();
        }
        if !settled {
            out.push_str("  (not every order was final when the demo stopped waiting)\n");
        }
        out.push_str("\nTraffic:\n");
        for (what, n) in &self.driver {
            writeln!(out, "  {what:<28} {n:>7}").ok();
        }
        writeln!(
            out,
            "  gateway latency (from the scheduled send): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.gateway.p50_ms, self.gateway.p99_ms, self.gateway.max_ms
        )
        .ok();
        out.push_str("\nBalances (ledger, whole database):\n");
        for (kind, owner, account, currency, balance) in &self.balances {
            writeln!(
                out,
                "  {kind:<8} {owner:<22} {account:<10} {balance:>18} {currency}"
            )
            .ok();
        }
        out.push_str("\nChecks:\n");
        for check in &self.checks {
            let mark = if check.ok { "ok    " } else { "FAILED" };
            writeln!(out, "  [{mark}] {} — {}", check.what, check.detail).ok();
        }
        out.push_str(if self.passed() {
            "All checks passed: the ledger sums to zero and matches the projections.\n"
        } else {
            "SOME CHECKS FAILED.\n"
        });
        out
    }
}

async fn checks(pool: &sqlx::PgPool) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let sums: Vec<(String, Decimal)> = sqlx::query_as(
        "SELECT currency, sum(amount) FROM ledger_entries GROUP BY currency ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    checks.push(Check {
        what: "the journal sums to zero per currency".into(),
        ok: sums.iter().all(|(_, s)| s.is_zero()),
        detail: sums
            .iter()
            .map(|(c, s)| format!("{c} {s}"))
            .collect::<Vec<_>>()
            .join(", "),
    });
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM ledger_entries GROUP BY transfer_id, currency HAVING sum(amount) <> 0) t",
    )
    .fetch_one(pool)
    .await?;
    let transfers: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_transfers")
        .fetch_one(pool)
        .await?;
    checks.push(Check {
        what: "every transfer balances".into(),
        ok: unbalanced == 0,
        detail: format!("{transfers} transfers, {unbalanced} unbalanced"),
    });
    let discrepancies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_balance_discrepancies")
            .fetch_one(pool)
            .await?;
    checks.push(Check {
        what: "balances equal the sum of their entries".into(),
        ok: discrepancies == 0,
        detail: format!("{discrepancies} accounts differ"),
    });
    let (completed, missing, extra, duplicated): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT
            (SELECT count(*) FROM orders WHERE status = 'completed' AND direction = 'pay_in'),
            (SELECT count(*) FROM orders o WHERE o.status = 'completed' AND o.direction = 'pay_in'
               AND NOT EXISTS (SELECT 1 FROM ledger_transfers t WHERE t.order_id = o.id AND t.kind = 'pay_in')),
            (SELECT count(*) FROM ledger_transfers t WHERE t.kind = 'pay_in'
               AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = t.order_id AND o.status = 'completed')),
            (SELECT count(*) FROM (SELECT order_id FROM ledger_transfers WHERE kind = 'pay_in'
               GROUP BY order_id HAVING count(*) > 1) d)",
    )
    .fetch_one(pool)
    .await?;
    checks.push(Check {
        what: "one pay-in transfer per completed order, none for any other".into(),
        ok: missing == 0 && extra == 0 && duplicated == 0,
        detail: format!(
            "{completed} completed; {missing} without a transfer, {extra} transfers without a completed order, {duplicated} settled twice"
        ),
    });
    // Each leg against the prices the projection recorded for the order (C = crypto amount,
    // s and t the store's and the trader's commission in %): store C·(1 − s), trader C·t − C,
    // platform C·(s − t). One micro-USDT of rounding per leg is allowed.
    let (checked, mismatched): (i64, i64) = sqlx::query_as(
        "WITH legs AS (
            SELECT t.order_id,
                   coalesce(sum(e.amount) FILTER (WHERE a.owner_kind = 'store'), 0) AS store_leg,
                   coalesce(sum(e.amount) FILTER (WHERE a.owner_kind = 'trader'), 0) AS trader_leg,
                   coalesce(sum(e.amount) FILTER (WHERE a.owner_kind = 'platform'), 0) AS platform_leg
            FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id
            JOIN ledger_accounts a ON a.id = e.account_id
            WHERE t.kind = 'pay_in' GROUP BY t.order_id)
         SELECT count(*),
                count(*) FILTER (WHERE
                    abs(l.store_leg - o.crypto_amount * (100 - o.store_commission_percent) / 100) > 0.000001
                 OR abs(l.trader_leg - (o.crypto_amount * o.trader_commission_percent / 100 - o.crypto_amount)) > 0.000001
                 OR abs(l.platform_leg - o.crypto_amount * (o.store_commission_percent - o.trader_commission_percent) / 100) > 0.000002)
         FROM legs l JOIN orders o ON o.id = l.order_id",
    )
    .fetch_one(pool)
    .await?;
    checks.push(Check {
        what: "store, trader and platform legs match each order's projected prices".into(),
        ok: mismatched == 0,
        detail: format!("{checked} pay-ins checked, {mismatched} differ"),
    });
    Ok(checks)
}
