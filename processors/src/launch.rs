//! Running one processor for real: its master-data tables, its runtime over its inputs and
//! changelog, the system clock.

use crate::commissions::CommissionsProcessor;
use crate::core::{MasterData, SystemClock};
use crate::fraud::FraudProcessor;
use crate::router::RouterProcessor;
use crate::runtime::{run, RuntimeConfig, RuntimeError};
use crate::tables::TableMasterData;
use crate::trader_book::TraderBookProcessor;
use crate::ProcessorKind;
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

/// Runs processor `kind` until `stop`, in consumer group `<group_prefix>.<name>`, as static
/// member `instance_id` of it when the settings name one.
pub async fn launch(
    kind: ProcessorKind,
    broker: &Broker,
    registry: SchemaRegistry,
    kafka: &KafkaSettings,
    stop: CancellationToken,
) -> Result<(), LaunchError> {
    let master: Arc<dyn MasterData> =
        Arc::new(TableMasterData::start(broker, &registry, stop.clone()).await?);
    let config = RuntimeConfig {
        instance_id: kafka.instance_id.clone(),
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
