//! The live view: a progress bar towards the target count of final orders, orders per second
//! (completed in the last seconds) and counts by status, refreshed from the order projection.
//! Without a terminal (a pipe, a test) it prints one line every few seconds instead.

use jivapay_domain::OrderStatus;
use jivapay_loadgen::{Plan, Progress};
use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub struct Display {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Orders of `by_status` (see [`counts`]) in a terminal status: they change no more.
pub fn final_count(by_status: &BTreeMap<String, i64>) -> i64 {
    OrderStatus::TERMINAL
        .iter()
        .filter_map(|s| by_status.get(s.as_str()))
        .sum()
}

/// Orders of the run by status, from the projection.
pub async fn counts(pool: &sqlx::PgPool, run_id: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT status, count(*) FROM orders WHERE external_order_id LIKE $1 || '-%' GROUP BY status",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await
    .map(|rows| rows.into_iter().collect())
    .unwrap_or_default()
}

impl Display {
    pub fn start(pool: sqlx::PgPool, plan: Plan, progress: Arc<Progress>) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let terminal = std::io::stderr().is_terminal();
            let bar = indicatif::ProgressBar::new(plan.orders);
            if terminal {
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:40.cyan/blue}] {pos}/{len} final  {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
            } else {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            // (time, completed) samples for the rate over the last five seconds.
            let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
            let mut last_line = Instant::now();
            loop {
                let by_status = counts(&pool, &plan.run_id).await;
                let completed = by_status.get("completed").copied().unwrap_or(0);
                let final_count = final_count(&by_status);
                let now = Instant::now();
                samples.push_back((now, completed));
                while samples
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(5))
                {
                    samples.pop_front();
                }
                let rate = match (samples.front(), samples.back()) {
                    (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                        (c1 - c0) as f64 / t1.duration_since(*t0).as_secs_f64()
                    }
                    _ => 0.0,
                };
                let statuses: Vec<String> =
                    by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
                let posted = Progress::get(&progress.posted);
                let message = format!(
                    "posted {posted} · {} · {rate:.1} completed/s",
                    if statuses.is_empty() {
                        "waiting for the first order".to_owned()
                    } else {
                        statuses.join(" · ")
                    }
                );
                bar.set_position(final_count.max(0) as u64);
                bar.set_message(message.clone());
                if !terminal && last_line.elapsed() >= Duration::from_secs(5) {
                    eprintln!("progress: {final_count}/{} final · {message}", plan.orders);
                    last_line = Instant::now();
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            bar.finish();
        });
        Self { stop, task }
    }

    pub async fn finish(self) {
        self.stop.cancel();
        self.task.await.ok();
    }
}
