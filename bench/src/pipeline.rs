//! Load steps against the running pipeline: pay-ins through the gateway, customers and traders
//! through their APIs, completion read from the ledger (`ledger_transfers.recorded_at`).

use crate::cluster::Cluster;
use crate::procfs;
use crate::step::{cores, StepResult};
use jivapay_loadgen::{drive_orders, Actors, Api, Percentiles, Plan, Progress};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct Pipeline<'a> {
    pub cluster: &'a Cluster,
    pub api: Api,
    pub actors: Actors,
    pub steps_run: u32,
}

/// CPU seconds so far: every component, PostgreSQL backends of the database, the load
/// generator and the embedded broker (threads of this process).
fn cpu_now(cluster: &Cluster) -> Vec<(String, f64)> {
    let mut cpu: Vec<(String, f64)> = cluster
        .usage()
        .into_iter()
        .map(|(name, cpu, _)| (name.to_owned(), cpu))
        .collect();
    cpu.push((
        "postgres (backends)".into(),
        procfs::postgres_backends_cpu(&cluster.db.name),
    ));
    let (generator, broker) = procfs::own_threads_cpu();
    cpu.push(("load generator".into(), generator));
    cpu.push(("embedded broker (librdkafka)".into(), broker));
    cpu
}

pub fn bench_plan(orders: u64, rate: f64, run_id: &str) -> Plan {
    Plan::benchmark(orders, rate, run_id)
}

impl Pipeline<'_> {
    /// One open-loop step of `secs` seconds at `rate` pay-ins/s. With `customers` off only the
    /// stores post (the gateway alone).
    pub async fn step(
        &mut self,
        label: &str,
        rate: f64,
        secs: f64,
        customers: bool,
    ) -> anyhow::Result<StepResult> {
        self.steps_run += 1;
        let orders = (rate * secs).round().max(1.0) as u64;
        let mut plan = bench_plan(
            orders,
            rate,
            &format!("bench-{}-{}", self.steps_run, Uuid::new_v4().simple()),
        );
        plan.play_customers = customers;
        let progress = Arc::new(Progress::default());
        let cpu_before = cpu_now(self.cluster);
        let started = Instant::now();
        let outcomes = drive_orders(&self.api, &self.actors, &plan, &progress).await;
        let accepted: Vec<Uuid> = outcomes
            .iter()
            .filter_map(|o| o.order_id.as_deref()?.parse().ok())
            .collect();
        let expected = if customers {
            outcomes.iter().filter(|o| o.customer_confirmed).count()
        } else {
            0
        };
        // Drain: completions of this step's orders, bounded.
        let mut done: Vec<(Uuid, i64)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while customers && Instant::now() <= deadline {
            done = sqlx::query_as(
                "SELECT order_id, (extract(epoch FROM recorded_at) * 1000)::bigint
                 FROM ledger_transfers WHERE kind = 'pay_in' AND order_id = ANY($1)",
            )
            .bind(&accepted)
            .fetch_all(&self.cluster.db.pool)
            .await?;
            if done.len() >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu_after = cpu_now(self.cluster);
        let scheduled: HashMap<Uuid, i64> = outcomes
            .iter()
            .filter_map(|o| Some((o.order_id.as_deref()?.parse().ok()?, o.scheduled_at_ms)))
            .collect();
        let pairs: Vec<(i64, i64)> = done
            .iter()
            .filter_map(|(order, recorded)| Some((*scheduled.get(order)?, *recorded)))
            .collect();
        let create = Percentiles::of(&progress.create_latency.snapshot());
        let (completed, duration_s) = (accepted.len() as u64, wall);
        let mut result = StepResult {
            system: "pipeline",
            label: label.to_owned(),
            offered_rate: rate,
            orders,
            completed,
            not_completed: orders.saturating_sub(completed),
            duration_s,
            completed_per_s: completed as f64 / duration_s,
            e2e: create,
            create,
            cpu_cores: cpu_before
                .iter()
                .zip(&cpu_after)
                .map(|((name, b), (_, a))| (name.clone(), cores(*b, *a, wall)))
                .collect(),
            peak_rss_mib: self
                .cluster
                .usage()
                .into_iter()
                .map(|(n, _, rss)| (n.to_owned(), rss as f64 / 1_048_576.0))
                .collect(),
            stages: Vec::new(),
            sustainable: false,
        };
        if customers {
            crate::step::completions(&mut result, pairs);
            result.stages = stages(&self.cluster.db.pool, &scheduled).await?;
        } else {
            // The gateway alone: every pay-in accepted and the tail bounded.
            result.sustainable = progress
                .create_failed
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0
                && Progress::get(&progress.shed) == 0
                && result.create.p99_ms <= 1000.0;
            result.e2e = result.create;
        }
        Ok(result)
    }

    /// Waits until no order of the benchmark is still open (after an overloaded step).
    pub async fn settle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orders WHERE status IN ('created', 'assigned', 'client_confirmed')",
            )
            .fetch_one(&self.cluster.db.pool)
            .await?;
            let requested: i64 =
                sqlx::query_scalar("SELECT count(*) FROM gateway_requests g WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = g.order_id)")
                    .fetch_one(&self.cluster.db.pool)
                    .await?;
            if (open == 0 && requested == 0) || Instant::now() > deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Per-stage times of the step's completed orders, from the projection's event times
/// (`orders.*_at`, set by the processors) and the ledger's `recorded_at`.
async fn stages(
    pool: &sqlx::PgPool,
    scheduled: &HashMap<Uuid, i64>,
) -> anyhow::Result<Vec<(String, Percentiles)>> {
    let ids: Vec<Uuid> = scheduled.keys().copied().collect();
    let rows: Vec<(Uuid, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT o.id, (extract(epoch FROM o.created_at) * 1000)::bigint,
                (extract(epoch FROM o.assigned_at) * 1000)::bigint,
                (extract(epoch FROM o.client_confirmed_at) * 1000)::bigint,
                (extract(epoch FROM o.completed_at) * 1000)::bigint,
                (extract(epoch FROM t.recorded_at) * 1000)::bigint
         FROM orders o JOIN ledger_transfers t ON t.order_id = o.id AND t.kind = 'pay_in'
         WHERE o.id = ANY($1) AND o.assigned_at IS NOT NULL AND o.client_confirmed_at IS NOT NULL
           AND o.completed_at IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let names = [
        "arrival → first order event (gateway, then fraud screens it)",
        "created → assigned (fraud, router, trader book)",
        "assigned → customer's confirmation applied (projection, customer poll, page, trader book)",
        "customer's → trader's confirmation applied = completed (projection, trader poll, API, trader book)",
        "completed → ledger transfer recorded (commissions, ledger sink)",
    ];
    let mut histograms: Vec<hdrhistogram::Histogram<u64>> =
        names.iter().map(|_| crate::step::new_histogram()).collect();
    for (id, created, assigned, client, completed, recorded) in rows {
        let Some(at) = scheduled.get(&id) else {
            continue;
        };
        let points = [*at, created, assigned, client, completed, recorded];
        for (i, h) in histograms.iter_mut().enumerate() {
            h.saturating_record(((points[i + 1] - points[i]).max(1) * 1000) as u64);
        }
    }
    Ok(names
        .iter()
        .zip(&histograms)
        .map(|(n, h)| (n.to_string(), Percentiles::of(h)))
        .collect())
}
