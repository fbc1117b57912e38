//! `jivapay-sim`: runs the deterministic simulation for one seed or a soak of many.
//!
//! ```text
//! jivapay-sim --seed 42                      # one seed, its summary, exit 1 if an invariant broke
//! jivapay-sim --seeds 200 --orders 5000      # a soak: seeds 1..=200 (or from --seed on)
//! jivapay-sim --orders 1000000 --jobs 2      # one long seed of a million orders
//! ```

use clap::Parser;
use jivapay_sim::{Config, Faults, Outcome};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "jivapay-sim",
    about = "Deterministic simulation of the JivaPay processor pipeline"
)]
struct Args {
    /// The seed (of the first run of a soak). Default: drawn from the clock, and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Orders per seed.
    #[arg(long, default_value_t = 2_000)]
    orders: u64,
    /// Run this many seeds, one after the other (a soak).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Fault rates: none, default or heavy.
    #[arg(long, default_value = "default")]
    faults: String,
    /// No freeze outlasts the session (no fenced owner writes on).
    #[arg(long)]
    no_zombies: bool,
    /// Turn off deduplication by origin (to see what the trackers prevent).
    #[arg(long)]
    no_dedup: bool,
    /// Seeds run at once (each run is single-threaded and deterministic).
    #[arg(long, default_value_t = 1)]
    jobs: u64,
    /// An invariant known to break: report its failures and go on (repeatable).
    #[arg(long)]
    known: Vec<String>,
    /// Print only failures and the totals.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    let args = Args::parse();
    let Some(mut faults) = Faults::named(&args.faults) else {
        eprintln!("--faults must be none, default or heavy");
        std::process::exit(2);
    };
    if args.no_zombies {
        faults.zombie = 0.0;
    }
    let first = args.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let seed = nanos % 1_000_000_000;
        println!("seed {seed} (drawn from the clock)");
        seed
    });
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<Outcome>();
    let mut failed: Vec<u64> = Vec::new();
    let mut known: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let (mut orders, mut runs) = (0u64, 0u64);
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.clamp(1, 64) {
            let tx = tx.clone();
            let (next, args) = (&next, &args);
            scope.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= args.seeds {
                    return;
                }
                let config = Config {
                    faults,
                    dedup: !args.no_dedup,
                    known: args.known.clone(),
                    ..Config::new(first + n, args.orders)
                };
                if tx.send(jivapay_sim::run(config)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for outcome in rx {
            runs += 1;
            orders += outcome.orders;
            if !args.quiet || !outcome.passed() {
                println!("{}", outcome.summary());
            }
            if !outcome.passed() || (!args.quiet && !outcome.stats.known.is_empty()) {
                println!("{}", outcome.failure());
            }
            if !outcome.passed() {
                failed.push(outcome.config.seed);
            }
            for invariant in outcome.stats.known.keys() {
                *known.entry(invariant).or_default() += 1;
            }
        }
    });
    let wall = started.elapsed().as_secs_f64();
    failed.sort_unstable();
    let shown: Vec<String> = failed.iter().take(20).map(u64::to_string).collect();
    let more = failed.len().saturating_sub(shown.len());
    let known: Vec<String> = known
        .iter()
        .map(|(invariant, seeds)| format!("known `{invariant}` in {seeds} seed(s)"))
        .collect();
    println!(
        "{runs} seed(s), {orders} orders simulated in {wall:.1} s: {:.0} orders/s; {} failed{}{}{}",
        orders as f64 / wall.max(1e-9),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(
                " (seeds {}{})",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        },
        if known.is_empty() { "" } else { "; " },
        known.join(", ")
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
