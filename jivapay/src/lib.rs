//! The `jivapay` binary's library half: command-line parsing and the component runners, kept
//! here so tests can drive them.

pub mod cli;
mod components;
mod demo;
mod shutdown;
mod supervise;

pub use components::{processor_names, sink_names, COMPONENT_COMMANDS};

use cli::{Cli, Command, TopicsAction};
use jivapay_platform::{telemetry, Settings};

/// Runs one command to completion (servers: until Ctrl-C or SIGTERM).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if matches!(cli.command, Command::Demo(_)) && std::env::var_os("JIVAPAY__LOG__FILTER").is_none()
    {
        // The demo's terminal belongs to its progress display: warnings and errors only,
        // unless a filter was asked for.
        settings.log.filter = "warn".into();
    }
    telemetry::init_logging(&settings.log);
    // The recorder before anything records: installed at the first scrape, it had lost every
    // count and timing of the records processed until then.
    telemetry::metrics();
    tracing::debug!(?settings, "settings loaded");
    match cli.command {
        Command::All => components::all(&settings, shutdown::signal(), None).await?,
        Command::Demo(args) => demo::run(&settings, args, shutdown::signal()).await?,
        Command::Ingest => components::ingest(&settings, shutdown::signal()).await?,
        Command::Admin => components::admin(&settings, shutdown::signal()).await?,
        Command::Processor { name } => {
            components::processor(&settings, &name, shutdown::signal()).await?
        }
        Command::Sink { name } => components::sink(&settings, &name, shutdown::signal()).await?,
        Command::Migrate => components::migrate(&settings).await?,
        Command::Seed { demo } => components::seed(&settings, demo).await?,
        Command::Topics {
            action: TopicsAction::Create,
        } => components::create_topics(&settings).await?,
        Command::Topics {
            action: TopicsAction::List,
        } => components::list_topics(),
    }
    Ok(())
}
