//! Running processors for real: the master-data tables, each processor's runtime over its
//! inputs and changelog, the system clock.

use crate::commissions::CommissionsProcessor;
use crate::core::{MasterData, SystemClock};
use crate::fraud::FraudProcessor;
use crate::router::RouterProcessor;
use crate::runtime::{run, RuntimeConfig, RuntimeError};
use crate::tables::TableMasterData;
use crate::trader_book::TraderBookProcessor;
use crate::ProcessorKind;
use jivapay_platform::health::Health;
use jivapay_platform::kafka::{Broker, TableError};
use jivapay_platform::settings::KafkaSettings;
use jivapay_schemas::SchemaRegistry;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Tables(#[from] TableError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Starts the master-data tables a processor reads. Processors of one process share one set
/// (`jivapay all` runs four): each table is a consumer that fetches and decodes every record,
/// so a set per processor multiplied that work and the broker's idle fetches by four.
pub async fn master_data(
    broker: &Broker,
    registry: &SchemaRegistry,
    stop: CancellationToken,
) -> Result<Arc<dyn MasterData>, LaunchError> {
    Ok(Arc::new(
        TableMasterData::start(broker, registry, stop).await?,
    ))
}

/// Runs processor `kind` until `stop` on `master` (see [`master_data`]), in consumer group
/// `<group_prefix>.<name>`, as static member `instance_id` of it when the settings name one,
/// reporting to `health` as `processor <name>`.
pub async fn launch(
    kind: ProcessorKind,
    broker: &Broker,
    registry: SchemaRegistry,
    kafka: &KafkaSettings,
    master: Arc<dyn MasterData>,
    health: Health,
    stop: CancellationToken,
) -> Result<(), LaunchError> {
    let config = RuntimeConfig {
        instance_id: kafka.instance_id.clone(),
        health,
        time_markers: kind.time_markers(),
        ..RuntimeConfig::new(format!("{}.{}", kafka.group_prefix, kind.name()))
    };
    let clock = Arc::new(SystemClock);
    let (inputs, changelog) = (kind.inputs(), kind.changelog());
    match kind {
        ProcessorKind::Fraud => {
            run(
                broker,
                registry,
                inputs,
                changelog,
                || FraudProcessor::new(master.clone()),
                clock,
                config,
                stop,
            )
            .await?
        }
        ProcessorKind::Router => {
            run(
                broker,
                registry,
                inputs,
                changelog,
                || RouterProcessor::new(master.clone()),
                clock,
                config,
                stop,
            )
            .await?
        }
        ProcessorKind::TraderBook => {
            run(
                broker,
                registry,
                inputs,
                changelog,
                || TraderBookProcessor::new(master.clone()),
                clock,
                config,
                stop,
            )
            .await?
        }
        ProcessorKind::Commissions => {
            run(
                broker,
                registry,
                inputs,
                changelog,
                || CommissionsProcessor::new(master.clone()),
                clock,
                config,
                stop,
            )
            .await?
        }
    }
    Ok(())
}
