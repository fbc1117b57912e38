//! `jivapay-bench`: open-loop load against the full pipeline on this machine (every component
//! its own process on an embedded broker, a fresh PostgreSQL database), the same load against
//! the seed's synchronous design in PostgreSQL (the baseline), side by side. See
//! docs/benchmarks.md.

mod baseline;
mod cluster;
mod pipeline;
mod procfs;
mod report;
mod step;

use clap::Parser;
use jivapay_loadgen::{sign_in, spawn_traders, Api, Progress};
use std::path::PathBuf;
use std::sync::Arc;
use step::StepResult;

#[derive(Debug, Parser)]
#[command(
    name = "jivapay-bench",
    about = "Benchmark of the JivaPay pipeline against the seed's design"
)]
struct Args {
    /// The `jivapay` binary to run (default: the one next to this binary).
    #[arg(long)]
    jivapay: Option<PathBuf>,
    /// Any database URL of the PostgreSQL server to use; databases named bench_* are created
    /// on it and dropped afterwards.
    #[arg(long, env = "JIVAPAY__DATABASE__URL")]
    database_url: String,
    /// Arrival rates (pay-ins/s) of the sweep that finds the maximum sustained rate; it stops
    /// at the first step not sustained.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "25,50,100,150,200,300,400,600,800"
    )]
    rates: Vec<f64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 15.0)]
    step_secs: f64,
    /// Gateway-only rates (pay-ins posted, nobody pays), run last.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
    ingest_rates: Vec<f64>,
    /// Connections of the baseline's pool.
    #[arg(long, default_value_t = 20)]
    baseline_connections: u32,
    /// Consumers' fetch.wait.max.ms in the pipeline's components (500 is librdkafka's default;
    /// the embedded broker holds empty fetches that long).
    #[arg(long, default_value_t = 500)]
    fetch_wait_ms: u64,
    /// The broker: `embedded` (librdkafka's mock cluster, hosted by this process) or `tansu`
    /// (a Tansu broker of the run's own, in-memory, from `scripts/stack`'s install).
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "tansu"])]
    broker: String,
    /// Run every component in one `jivapay all` process (how a small deployment runs it)
    /// instead of one process each; CPU and memory are then reported for the whole.
    #[arg(long)]
    one_process: bool,
    /// Skip the gateway-only steps.
    #[arg(long)]
    skip_ingest: bool,
    #[arg(long)]
    skip_pipeline: bool,
    #[arg(long)]
    skip_baseline: bool,
    /// Folder for results.md, results.json and latency-throughput.svg.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Interrupted: the work future is dropped, and with it the component processes (killed by
    // their Drop); the bench_* databases of the run are left for `DROP DATABASE`.
    tokio::select! {
        result = bench(args) => result,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        _ = term.recv() => anyhow::bail!("terminated"),
    }
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let jivapay = match &args.jivapay {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("jivapay"),
    };
    std::fs::create_dir_all(&args.out)?;
    let mut steps: Vec<StepResult> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    if !args.skip_pipeline {
        run_pipeline(&args, &jivapay, &mut steps, &mut notes).await?;
    }
    if !args.skip_baseline {
        run_baseline(&args, &mut steps).await?;
    }
    let max = |system: &str| {
        steps
            .iter()
            .filter(|s| s.system == system && s.label == "sweep" && s.sustainable)
            .map(|s| s.completed_per_s)
            .fold(0.0, f64::max)
    };
    let (ours, theirs) = (max("pipeline"), max("baseline"));
    if ours > 0.0 && theirs > 0.0 {
        notes.push(format!(
            "Max sustained completed orders/s: pipeline {ours:.0}, baseline {theirs:.0}: ratio {:.2}×",
            ours / theirs
        ));
    }
    let mut md = report::markdown(&steps);
    for s in steps.iter().filter(|s| s.label.contains("50% of max")) {
        md.push('\n');
        md.push_str(&report::resources(s));
        if !s.stages.is_empty() {
            md.push('\n');
            md.push_str(&report::stages(s));
        }
    }
    if let Some(s) = steps
        .iter()
        .rev()
        .find(|s| s.system == "pipeline" && s.label == "sweep")
    {
        md.push('\n');
        md.push_str(&report::resources(s));
        md.push('\n');
        md.push_str(&report::stages(s));
    }
    md.push('\n');
    for note in &notes {
        md.push_str(&format!("- {note}\n"));
    }
    std::fs::write(args.out.join("results.md"), &md)?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&steps)?,
    )?;
    std::fs::write(args.out.join("latency-throughput.svg"), report::svg(&steps))?;
    println!("{md}");
    println!("written to {}", args.out.display());
    Ok(())
}

fn print_step(s: &StepResult) {
    eprintln!(
        "[{}] {} at {:.0}/s: {}/{} completed, {:.1}/s, e2e p50 {:.0} ms p99 {:.0} ms, create p99 {:.1} ms — {}",
        s.system,
        s.label,
        s.offered_rate,
        s.completed,
        s.orders,
        s.completed_per_s,
        s.e2e.p50_ms,
        s.e2e.p99_ms,
        s.create.p99_ms,
        if s.sustainable { "sustained" } else { "NOT sustained" }
    );
}

async fn run_pipeline(
    args: &Args,
    jivapay: &PathBuf,
    steps: &mut Vec<StepResult>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    notes.push(format!(
        "Pipeline layout: {}; broker {}; consumers' fetch wait {} ms.",
        if args.one_process {
            "every component in one `jivapay all` process"
        } else {
            "one process per component"
        },
        args.broker,
        args.fetch_wait_ms
    ));
    let components = if args.one_process {
        cluster::ONE_PROCESS
    } else {
        cluster::COMPONENTS
    };
    eprintln!("starting the pipeline ({} processes)…", components.len());
    let cluster = cluster::Cluster::start(
        jivapay,
        &args.database_url,
        args.fetch_wait_ms,
        components,
        args.broker == "tansu",
    )
    .await?;
    let result = async {
        cluster::wait_for_deposits(&cluster.db.pool).await?;
        let api = Api::new(&cluster.ingest, &cluster.admin)?;
        let merchants = vec!["demo-merchant-1".to_owned(), "demo-merchant-2".to_owned()];
        let traders: Vec<String> = (1..=6).map(|n| format!("demo-trader-{n}")).collect();
        let actors = sign_in(&api, &merchants, &traders, cluster::DEMO_PASSWORD).await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let trader_progress = Arc::new(Progress::default());
        let plan = pipeline::bench_plan(0, 1.0, "traders");
        let trader_tasks = spawn_traders(&api, &actors, &plan, &trader_progress, stop.clone());
        let mut bench = pipeline::Pipeline {
            cluster: &cluster,
            api,
            actors,
            steps_run: 0,
        };
        // Warm-up: the first orders pay for connection set-up and caches.
        let warm = bench.step("warm-up", 10.0, 5.0, true).await?;
        print_step(&warm);
        let size_before = cluster.db.size_bytes().await?;
        let mut orders_done = 0u64;
        let mut max_rate: f64 = 0.0;
        for rate in &args.rates {
            let s = bench.step("sweep", *rate, args.step_secs, true).await?;
            print_step(&s);
            orders_done += s.completed;
            let sustained = s.sustainable;
            if sustained {
                max_rate = max_rate.max(s.completed_per_s.min(*rate));
            }
            steps.push(s);
            if !sustained {
                bench.settle().await?;
                break;
            }
        }
        if max_rate > 0.0 {
            for share in [0.25, 0.5, 0.8] {
                let s = bench
                    .step(
                        &format!("{:.0}% of max", share * 100.0),
                        (max_rate * share).max(1.0),
                        args.step_secs * 1.5,
                        true,
                    )
                    .await?;
                print_step(&s);
                orders_done += s.completed;
                steps.push(s);
            }
        }
        let size_after = cluster.db.size_bytes().await?;
        if orders_done > 0 {
            notes.push(format!(
                "PostgreSQL bytes per completed order (pg_database_size delta {} bytes over {orders_done} orders, all tables and indexes): {:.0}",
                size_after - size_before,
                (size_after - size_before) as f64 / orders_done as f64
            ));
            let tables: Vec<(String, i64)> = sqlx::query_as(
                "SELECT relname::text, pg_total_relation_size(c.oid) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC LIMIT 8",
            )
            .fetch_all(&cluster.db.pool)
            .await?;
            notes.push(format!(
                "Largest tables at the end (bytes, with indexes and TOAST): {}",
                tables
                    .iter()
                    .map(|(t, b)| format!("{t} {b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        stop.cancel();
        for task in trader_tasks {
            task.await.ok();
        }
        // The gateway alone, last: these orders stay open and would crowd the traders' lists.
        for rate in args.ingest_rates.iter().filter(|_| !args.skip_ingest) {
            let s = bench.step("ingest only", *rate, 10.0, false).await?;
            print_step(&s);
            let sustained = s.sustainable;
            steps.push(s);
            if !sustained {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    cluster.stop().await;
    result
}

async fn run_baseline(args: &Args, steps: &mut Vec<StepResult>) -> anyhow::Result<()> {
    eprintln!("baseline: the seed's synchronous design in PostgreSQL…");
    let baseline =
        baseline::Baseline::create(&args.database_url, args.baseline_connections).await?;
    let result = async {
        let warm = baseline.step("warm-up", 10.0, 3.0).await?;
        print_step(&warm);
        let mut max_rate: f64 = 0.0;
        let mut rates = args.rates.clone();
        // The baseline may go further than the pipeline's sweep: keep doubling.
        while rates.len() < 20 {
            let last = *rates.last().unwrap_or(&25.0);
            rates.push(last * 1.5);
        }
        for rate in rates {
            let s = baseline.step("sweep", rate, args.step_secs).await?;
            print_step(&s);
            let sustained = s.sustainable;
            if sustained {
                max_rate = max_rate.max(s.completed_per_s.min(rate));
            }
            steps.push(s);
            if !sustained {
                break;
            }
        }
        if max_rate > 0.0 {
            for share in [0.25, 0.5, 0.8] {
                let s = baseline
                    .step(
                        &format!("{:.0}% of max", share * 100.0),
                        (max_rate * share).max(1.0),
                        args.step_secs * 1.5,
                    )
                    .await?;
                print_step(&s);
                steps.push(s);
            }
        }
        anyhow::Ok(())
    }
    .await;
    baseline.stop().await;
    result
}
