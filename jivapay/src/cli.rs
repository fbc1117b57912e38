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
