//! `jivapay demo`: the system working, in one command. Seeds the demo data, runs every
//! component in this process (as `jivapay all`), drives simulated stores, customers and traders
//! through the real HTTP APIs (`jivapay-loadgen`), shows live progress, prints a summary whose
//! books are checked against the order projection, and keeps serving until Ctrl-C.

mod progress;
mod summary;

use crate::cli::DemoArgs;
use crate::components::{self, Served};
use jivapay_loadgen::{drive_orders, sign_in, spawn_traders, Api, Plan, Progress};
use jivapay_platform::{db, schema_registry, Settings};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The demo's people (created by `jivapay seed --demo`).
const MERCHANTS: &[&str] = &["demo-merchant-1", "demo-merchant-2"];
const TRADERS: &[&str] = &[
    "demo-trader-1",
    "demo-trader-2",
    "demo-trader-3",
    "demo-trader-4",
    "demo-trader-5",
    "demo-trader-6",
];

pub async fn run(
    settings: &Settings,
    args: DemoArgs,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be greater than 0");
    anyhow::ensure!(
        (60..=86_400).contains(&args.payment_window),
        "--payment-window must be between 60 and 86400 seconds"
    );
    let password = settings
        .seed
        .demo_password
        .as_ref()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the demo needs JIVAPAY__SEED__DEMO_PASSWORD, the demo accounts' password"
            )
        })?
        .expose_secret()
        .to_owned();
    if settings.embedded_broker() {
        start_afresh(settings).await?;
    }
    components::seed(settings, true).await?;
    let pool = db::connect(&settings.database).await?;
    {
        let schemas = schema_registry::load(&settings.schema_registry).await?;
        let state = jivapay_admin::AppState::new(settings, pool.clone(), schemas)?;
        jivapay_admin::seed::set_setting(
            &state,
            "orders.payment_window_secs",
            serde_json::json!(args.payment_window),
        )
        .await?;
        // The demo's three stores carry all of `--rate`: their per-store gateway budget
        // (default 200/s) must not cap it.
        jivapay_admin::seed::set_setting(
            &state,
            "rate_limits.gateway_requests_per_second",
            serde_json::json!(100_000),
        )
        .await?;
    }
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let server = components::all(settings, stop.clone(), Some(ready_tx));
    let driver = async {
        let Ok(served) = ready_rx.await else {
            return Ok(()); // the server stopped before serving: its error is the one to show
        };
        let result = drive(&pool, &served, &args, &password, &stop).await;
        if let Err(e) = &result {
            eprintln!("jivapay demo: {e:#}");
            stop.cancel();
        }
        result
    };
    let (served, driven) = tokio::join!(server, driver);
    served.and(driven)
}

/// The embedded broker keeps its topics in this process only, so an earlier run's database
/// (its sinks' stored offsets, its orders, its ledger) would not match the empty topics this
/// run starts with: sinks would skip every record below the old offsets and the books would
/// miss the deposits. The demo therefore starts from an empty database.
async fn start_afresh(settings: &Settings) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database).await?;
    let earlier: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&pool)
    .await?;
    if earlier.unwrap_or(0) > 0 {
        eprintln!(
            "jivapay demo: the embedded broker starts empty, so the demo empties its database too"
        );
        sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            .execute(&pool)
            .await?;
    }
    pool.close().await;
    Ok(())
}

async fn drive(
    pool: &sqlx::PgPool,
    served: &Served,
    args: &DemoArgs,
    password: &str,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let api = Api::new(
        &format!("http://{}", served.ingest),
        &format!("http://{}", served.admin),
    )?;
    let merchants: Vec<String> = MERCHANTS.iter().map(|s| s.to_string()).collect();
    let traders: Vec<String> = TRADERS.iter().map(|s| s.to_string()).collect();
    let actors = sign_in(&api, &merchants, &traders, password).await?;
    summary::wait_for_deposits(pool, TRADERS.len(), stop).await?;
    let plan = Plan::demo(args.orders, args.rate);
    let progress = Arc::new(Progress::default());
    let traders_stop = stop.child_token();
    let trader_tasks = spawn_traders(&api, &actors, &plan, &progress, traders_stop.clone());
    let display = progress::Display::start(pool.clone(), plan.clone(), progress.clone());
    let outcomes = tokio::select! {
        outcomes = drive_orders(&api, &actors, &plan, &progress) => outcomes,
        _ = stop.cancelled() => return Ok(()),
    };
    // Unpaid orders expire when their window closes; slow traders confirm a little later.
    let settle = Duration::from_secs(args.payment_window + 30) + plan.slow_trader_delay;
    let settled = tokio::select! {
        settled = summary::wait_until_final(pool, &plan.run_id, outcomes.len(), settle) => settled?,
        _ = stop.cancelled() => return Ok(()),
    };
    traders_stop.cancel();
    for task in trader_tasks {
        task.await.ok();
    }
    display.finish().await;
    let report = load_summary(pool, &plan.run_id, &progress, &outcomes).await?;
    let mut text = report.render(settled);
    text.push_str(&urls(served, pool, &plan.run_id).await);
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()).ok();
    stop.cancelled().await;
    Ok(())
}

/// The summary, tried again for a minute if PostgreSQL is away just then.
async fn load_summary(
    pool: &sqlx::PgPool,
    run_id: &str,
    progress: &Progress,
    outcomes: &[jivapay_loadgen::OrderOutcome],
) -> anyhow::Result<summary::Summary> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match summary::Summary::load(pool, run_id, progress, outcomes).await {
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await
            }
            loaded => return loaded,
        }
    }
}

/// Where to look next: a payment page of this run still open if one is, the APIs, metrics.
async fn urls(served: &Served, pool: &sqlx::PgPool, run_id: &str) -> String {
    let token: Option<String> = sqlx::query_scalar(
        "SELECT g.payment_token FROM gateway_requests g LEFT JOIN orders o ON o.id = g.order_id
         WHERE g.external_order_id LIKE $1 || '-%'
         ORDER BY (o.status = 'assigned') DESC, g.created_at DESC LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await
    .ok()
    .flatten();
    let page = token
        .map(|t| format!("http://{}/pay/{t}", served.ingest))
        .unwrap_or_else(|| format!("http://{}/", served.ingest));
    format!(
        "\nOpen:\n  \
         a payment page             {page}\n  \
         management API             http://{admin}/api (log in: POST /api/auth/admin/login)\n  \
         schema registry            http://{admin}/subjects\n  \
         metrics                    http://{admin}/metrics\n  \
         health                     http://{admin}/readyz\n  \
         Kafka bootstrap            {kafka}\n\
         Still serving; Ctrl-C stops it.\n",
        admin = served.admin,
        kafka = served.kafka,
    )
}
