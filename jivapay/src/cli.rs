//! The command line: the same build runs every role.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "jivapay", version, about = "JivaPay payment processing")]
pub struct Cli {
    /// A TOML settings file (layered between the defaults and `JIVAPAY__…` variables).
    #[arg(long, global = true, env = "JIVAPAY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every component in one process; hosts the embedded broker when
    /// JIVAPAY__KAFKA__BROKERS=embedded (the default).
    All,
    /// The demo: seeds demo data, runs everything like `all`, drives simulated stores,
    /// customers and traders, shows progress and a summary, then serves until Ctrl-C.
    Demo(DemoArgs),
    /// The gateway API for stores and the hosted payment page.
    Ingest,
    /// The management and query API, with the Schema Registry API.
    Admin,
    /// One stream processor.
    Processor {
        /// fraud, router, trader-book or commissions
        name: String,
    },
    /// One sink.
    Sink {
        /// ledger, projection, callbacks or audit
        name: String,
    },
    /// Applies the PostgreSQL migrations and exits.
    Migrate,
    /// Creates reference data, default settings and the first admin (idempotent).
    Seed {
        /// Also create demo merchants, stores, team leads and traders with requisites.
        #[arg(long)]
        demo: bool,
    },
    /// Topic administration.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum TopicsAction {
    /// Creates every topic of the catalogue that does not exist yet, and checks the others.
    Create,
    /// Prints the catalogue.
    List,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Pay-ins the simulated stores post.
    #[arg(long, default_value_t = 300)]
    pub orders: u64,
    /// Pay-ins per second (a constant arrival rate).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds a customer has to pay (the runtime setting orders.payment_window_secs; at
    /// least 60). Orders whose customer never pays expire after it.
    #[arg(long, default_value_t = 60)]
    pub payment_window: u64,
}
