//! The runners behind each subcommand. The fixed set of processors and sinks is registered in
//! their crates (`PROCESSORS`, `SINKS`); here each role is wired to its dependencies.

use crate::supervise::Loops;
use jivapay_platform::health::Health;
use jivapay_platform::http::{bind, ops_router, serve, Readiness};
use jivapay_platform::kafka::{Broker, RecordProducer};
use jivapay_platform::order_changes::OrderChanges;
use jivapay_platform::settings::KafkaSettings;
use jivapay_platform::settings_catalog;
use jivapay_platform::{db, schema_registry, Settings, StartupError};
use jivapay_processors::core::MasterData;
use jivapay_processors::launch::master_data;
use jivapay_processors::{check_co_partitioning, ProcessorKind, PROCESSORS};
use jivapay_schemas::TOPICS;
use jivapay_sinks::dead_letters::DeadLettersSink;
use jivapay_sinks::ledger::LedgerSink;
use jivapay_sinks::projection::ProjectionSink;
use jivapay_sinks::runtime::SinkLoop;
use jivapay_sinks::{SinkKind, SINKS};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Every component as a command line (after `jivapay`): the deployment runs one service each.
pub const COMPONENT_COMMANDS: &[&str] = &[
    "ingest",
    "admin",
    "processor fraud",
    "processor router",
    "processor trader-book",
    "processor commissions",
    "sink ledger",
    "sink projection",
    "sink callbacks",
    "sink dead-letters",
];

pub fn processor_names() -> Vec<&'static str> {
    PROCESSORS.iter().map(ProcessorKind::name).collect()
}

pub fn sink_names() -> Vec<&'static str> {
    SINKS.iter().map(SinkKind::name).collect()
}

/// Serves `router` on a bound listener until `stop` is cancelled.
async fn serve_until(
    name: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(component = name, addr = %listener.local_addr()?, "listening");
    serve(listener, router, async move { stop.cancelled().await }).await?;
    Ok(())
}

/// Binds `addr` and serves `router` on it until `stop` is cancelled.
async fn bind_and_serve(
    name: &'static str,
    addr: SocketAddr,
    router: axum::Router,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    serve_until(name, bind(addr).await?, router, stop).await
}

/// Where `jivapay all` serves, sent once it listens (the demo drives traffic at it).
#[derive(Debug, Clone)]
pub struct Served {
    pub ingest: SocketAddr,
    pub admin: SocketAddr,
    pub kafka: String,
}

/// Everything in one process: the embedded broker (unless an external one is configured),
/// migrations, topics, and every HTTP surface. `ready` (if any) gets the bound addresses.
pub async fn all(
    settings: &Settings,
    stop: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<Served>>,
) -> anyhow::Result<()> {
    let broker = Broker::connect(&settings.kafka, true, "all").await?;
    let schemas = schema_registry::load(&settings.schema_registry).await?;
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool).await?;
    broker.ensure_topics(TOPICS).await?;
    for processor in PROCESSORS {
        check_co_partitioning(&broker, *processor).await?;
    }
    let health = Health::default();
    // One listener feeds the payment pages' and the traders' streams.
    let changes = OrderChanges::listening(&pool, &health, &stop);
    let admin_state = jivapay_admin::AppState::new(settings, pool.clone(), schemas.clone())?
        .with_commands(RecordProducer::shared(&broker, schemas.clone())?)
        .with_changes(changes.clone());
    let relay = spawn_outbox_relay(&broker, &pool, &schemas, &health, stop.clone())?;
    let mut loops = Loops::default();
    loops.watch_producer(&broker, stop.clone());
    for kind in SINKS {
        let group = format!("{}.sink.{}", settings.kafka.group_prefix, kind.name());
        spawn_sink(
            &mut loops,
            *kind,
            settings,
            (&broker, &schemas, &pool),
            &group,
            &health,
            stop.clone(),
        )?;
    }
    let master = master_data(&broker, &schemas, stop.clone()).await?;
    for kind in PROCESSORS {
        spawn_processor(
            &mut loops,
            *kind,
            (&broker, &schemas),
            &settings.kafka,
            master.clone(),
            &health,
            stop.clone(),
        );
    }
    let (pool_for_ingest, health_for_ingest) = (pool.clone(), health.clone());
    let readiness = Readiness::default()
        .with_database(pool)
        .with_broker(broker.clone())
        .with_loops(health);
    // Bound before printing, so the addresses shown are the real ones (port 0 picks a free one).
    let ingest_listener = bind(settings.http.ingest_addr).await?;
    let admin_listener = bind(settings.http.admin_addr).await?;
    let ingest_addr = ingest_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let embedded = if broker.is_embedded() {
        " (embedded)"
    } else {
        ""
    };
    // Written with errors ignored: a closed stdout (a supervisor that stopped reading) must
    // not stop the server.
    let banner = format!(
        "JivaPay is running (Ctrl-C stops it):\n  \
         gateway and payment pages  http://{ingest_addr}/\n  \
         management API             http://{admin_addr}/api\n  \
         schema registry            http://{admin_addr}/subjects\n  \
         metrics                    http://{admin_addr}/metrics\n  \
         health                     http://{admin_addr}/readyz\n  \
         Kafka bootstrap            {}{embedded}\n",
        broker.bootstrap_servers()
    );
    std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes()).ok();
    if let Some(ready) = ready {
        ready
            .send(Served {
                ingest: ingest_addr,
                admin: admin_addr,
                kafka: broker.bootstrap_servers().to_owned(),
            })
            .ok();
    }
    let ingest = serve_until(
        "ingest",
        ingest_listener,
        jivapay_ingest::router(
            ingest_state(
                settings,
                (&pool_for_ingest, &broker, &schemas),
                &health_for_ingest,
                &stop,
                &changes,
            )
            .await?,
            readiness.clone(),
        ),
        stop.clone(),
    );
    let admin = serve_until(
        "admin",
        admin_listener,
        jivapay_admin::router(admin_state, readiness),
        stop.clone(),
    );
    // A loop that fails stops the process (and it exits non-zero).
    let result = tokio::select! {
        served = async { tokio::try_join!(ingest, admin) } => served.map(drop),
        failed = loops.failure(&stop) => Err(failed),
    };
    stop.cancel();
    drop(relay.await);
    loops.join().await;
    // The embedded broker (if any) stops when the last handle to it is dropped, here.
    drop(broker);
    result
}

pub async fn ingest(settings: &Settings, stop: CancellationToken) -> anyhow::Result<()> {
    let broker = Broker::connect(&settings.kafka, false, "ingest").await?;
    let schemas = schema_registry::load(&settings.schema_registry).await?;
    let pool = db::connect(&settings.database).await?;
    let health = Health::default();
    let changes = OrderChanges::listening(&pool, &health, &stop);
    let state = ingest_state(
        settings,
        (&pool, &broker, &schemas),
        &health,
        &stop,
        &changes,
    )
    .await?;
    let mut loops = Loops::default();
    loops.watch_producer(&broker, stop.clone());
    let readiness = Readiness::default()
        .with_database(pool)
        .with_broker(broker)
        .with_loops(health);
    serve_supervised(
        ("ingest", settings.http.ingest_addr),
        jivapay_ingest::router(state, readiness),
        loops,
        stop,
    )
    .await
}

/// The gateway's dependencies. The payment window it promises is the runtime setting at start.
/// Starts the listener that keeps the gateway's cache true (until `stop`).
async fn ingest_state(
    settings: &Settings,
    (pool, broker, schemas): (&sqlx::PgPool, &Broker, &jivapay_schemas::SchemaRegistry),
    health: &Health,
    stop: &CancellationToken,
    changes: &std::sync::Arc<OrderChanges>,
) -> anyhow::Result<jivapay_ingest::IngestState> {
    let cache = std::sync::Arc::new(jivapay_ingest::cache::GatewayCache::default());
    tokio::spawn(jivapay_ingest::cache::listen(
        pool.clone(),
        cache.clone(),
        health.register("listener gateway cache"),
        stop.clone(),
    ));
    const PAYMENT_WINDOW: &str = "orders.payment_window_secs";
    let window_secs: Option<i64> = sqlx::query_scalar(
        "SELECT (value #>> '{}')::bigint FROM configuration_settings WHERE key = $1",
    )
    .bind(PAYMENT_WINDOW)
    .fetch_optional(pool)
    .await?
    .flatten();
    let public_url = settings
        .http
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.http.ingest_addr));
    let payment_window = std::time::Duration::from_secs(
        window_secs
            .unwrap_or_else(|| settings_catalog::default_integer(PAYMENT_WINDOW))
            .max(settings_catalog::minimum_integer(PAYMENT_WINDOW)) as u64,
    );
    Ok(jivapay_ingest::IngestState {
        pool: pool.clone(),
        producer: RecordProducer::shared(broker, schemas.clone())?,
        data_key: std::sync::Arc::new(jivapay_core::crypto::DataKey::from_settings(
            settings.security.data_key.as_ref(),
        )?),
        public_url,
        payment_window,
        journal: jivapay_ingest::gateway::journal::Journal::start(pool.clone(), payment_window),
        receipts: std::sync::Arc::new(jivapay_ingest::payment_page::ReceiptStore::from_settings(
            &settings.receipts,
        )?),
        cache,
        limits: Default::default(),
        changes: changes.clone(),
    })
}

pub async fn admin(settings: &Settings, stop: CancellationToken) -> anyhow::Result<()> {
    let broker = Broker::connect(&settings.kafka, false, "admin").await?;
    let schemas = schema_registry::load(&settings.schema_registry).await?;
    let pool = db::connect(&settings.database).await?;
    let health = Health::default();
    let state = jivapay_admin::AppState::new(settings, pool.clone(), schemas.clone())?
        .with_commands(RecordProducer::shared(&broker, schemas.clone())?)
        .with_changes(OrderChanges::listening(&pool, &health, &stop));
    let relay = spawn_outbox_relay(&broker, &pool, &schemas, &health, stop.clone())?;
    let mut loops = Loops::default();
    loops.watch_producer(&broker, stop.clone());
    let readiness = Readiness::default()
        .with_database(pool)
        .with_broker(broker)
        .with_loops(health);
    let result = serve_supervised(
        ("admin", settings.http.admin_addr),
        jivapay_admin::router(state, readiness),
        loops,
        stop.clone(),
    )
    .await;
    stop.cancel();
    drop(relay.await);
    result
}

/// The outbox relay of the management API, running until `stop` (reporting as `outbox relay`).
fn spawn_outbox_relay(
    broker: &Broker,
    pool: &sqlx::PgPool,
    schemas: &jivapay_schemas::SchemaRegistry,
    health: &Health,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let producer = RecordProducer::shared(broker, schemas.clone())?;
    Ok(tokio::spawn(jivapay_admin::outbox::relay::run(
        pool.clone(),
        producer,
        health.register("outbox relay"),
        stop,
    )))
}

pub async fn processor(
    settings: &Settings,
    name: &str,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ProcessorKind::from_name(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown processor {name:?}; known: {}",
            processor_names().join(", ")
        )
    })?;
    let component = format!("processor {name}");
    let broker = Broker::connect(&settings.kafka, false, &component).await?;
    let schemas = schema_registry::load(&settings.schema_registry).await?;
    check_co_partitioning(&broker, kind).await?;
    let health = Health::default();
    let readiness = Readiness::default()
        .with_broker(broker.clone())
        .with_loops(health.clone());
    let master = master_data(&broker, &schemas, stop.clone()).await?;
    let mut loops = Loops::default();
    loops.watch_producer(&broker, stop.clone());
    spawn_processor(
        &mut loops,
        kind,
        (&broker, &schemas),
        &settings.kafka,
        master,
        &health,
        stop.clone(),
    );
    let ops = ("ops", settings.http.ops_addr);
    serve_supervised(ops, ops_router(readiness), loops, stop).await
}

/// Serves `router` on `addr` until `stop`, or until one of `loops` fails (then the error is the
/// process's, which exits non-zero).
async fn serve_supervised(
    (name, addr): (&'static str, SocketAddr),
    router: axum::Router,
    mut loops: Loops,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let result = tokio::select! {
        served = bind_and_serve(name, addr, router, stop.clone()) => served,
        failed = loops.failure(&stop) => Err(failed),
    };
    stop.cancel();
    loops.join().await;
    result
}

/// Starts one processor's loop until `stop`.
fn spawn_processor(
    loops: &mut Loops,
    kind: ProcessorKind,
    (broker, schemas): (&Broker, &jivapay_schemas::SchemaRegistry),
    kafka: &KafkaSettings,
    master: Arc<dyn MasterData>,
    health: &Health,
    stop: CancellationToken,
) {
    let (broker, schemas, kafka, health) = (
        broker.clone(),
        schemas.clone(),
        kafka.clone(),
        health.clone(),
    );
    loops.spawn(format!("processor {}", kind.name()), async move {
        jivapay_processors::launch::launch(kind, &broker, schemas, &kafka, master, health, stop)
            .await
            .map_err(Into::into)
    });
}

pub async fn sink(settings: &Settings, name: &str, stop: CancellationToken) -> anyhow::Result<()> {
    let kind = SinkKind::from_name(name).ok_or_else(|| {
        anyhow::anyhow!("unknown sink {name:?}; known: {}", sink_names().join(", "))
    })?;
    let component = format!("sink {name}");
    let broker = Broker::connect(&settings.kafka, false, &component).await?;
    let schemas = schema_registry::load(&settings.schema_registry).await?;
    let pool = db::connect(&settings.database).await?;
    let health = Health::default();
    let readiness = Readiness::default()
        .with_database(pool.clone())
        .with_broker(broker.clone())
        .with_loops(health.clone());
    let group = format!("{}.sink.{name}", settings.kafka.group_prefix);
    let mut loops = Loops::default();
    loops.watch_producer(&broker, stop.clone());
    spawn_sink(
        &mut loops,
        kind,
        settings,
        (&broker, &schemas, &pool),
        &group,
        &health,
        stop.clone(),
    )?;
    let ops = ("ops", settings.http.ops_addr);
    serve_supervised(ops, ops_router(readiness), loops, stop).await
}

/// Starts a sink's loop until `stop`, reporting to `health` as `sink <name>`.
fn spawn_sink(
    loops: &mut Loops,
    kind: SinkKind,
    settings: &Settings,
    (broker, schemas, pool): (&Broker, &jivapay_schemas::SchemaRegistry, &sqlx::PgPool),
    group: &str,
    health: &Health,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let component = format!("sink {}", kind.name());
    let loop_health = health.register(component.clone());
    let (broker, schemas, pool, group) = (
        broker.clone(),
        schemas.clone(),
        pool.clone(),
        group.to_owned(),
    );
    let topic = kind.inputs()[0];
    match kind {
        SinkKind::Ledger => loops.spawn(
            component,
            run_sink(
                broker,
                schemas,
                pool,
                topic,
                group,
                loop_health,
                LedgerSink,
                stop,
            ),
        ),
        SinkKind::Projection => loops.spawn(
            component,
            run_sink(
                broker,
                schemas,
                pool,
                topic,
                group,
                loop_health,
                ProjectionSink,
                stop,
            ),
        ),
        SinkKind::DeadLetters => loops.spawn(
            component,
            run_sink(
                broker,
                schemas,
                pool,
                topic,
                group,
                loop_health,
                DeadLettersSink,
                stop,
            ),
        ),
        SinkKind::Callbacks => {
            let data_key = std::sync::Arc::new(jivapay_core::crypto::DataKey::from_settings(
                settings.security.data_key.as_ref(),
            )?);
            let public_url = settings
                .http
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", settings.http.ingest_addr));
            loops.spawn(
                component,
                jivapay_sinks::callbacks::run(
                    broker,
                    schemas,
                    pool,
                    group,
                    jivapay_sinks::callbacks::Options {
                        public_url,
                        data_key,
                        clock: jivapay_sinks::callbacks::system_clock(),
                        sender: Default::default(),
                    },
                    loop_health,
                    stop,
                ),
            )
        }
    }
    Ok(())
}

/// The generic sink loop over `topic` with `sink`.
#[allow(clippy::too_many_arguments)]
async fn run_sink<T, S>(
    broker: Broker,
    registry: jivapay_schemas::SchemaRegistry,
    pool: sqlx::PgPool,
    topic: &'static str,
    group: String,
    health: jivapay_platform::health::LoopHealth,
    sink: S,
    stop: CancellationToken,
) -> anyhow::Result<()>
where
    T: jivapay_schemas::Record + Send + Sync,
    S: jivapay_sinks::runtime::Sink<T>,
{
    let at = SinkLoop {
        broker: &broker,
        registry,
        pool,
        topic,
        group: &group,
        health,
    };
    Ok(jivapay_sinks::runtime::run(at, sink, stop).await?)
}

pub async fn migrate(settings: &Settings) -> Result<(), StartupError> {
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool).await?;
    pool.close().await;
    println!("migrations applied");
    Ok(())
}

pub async fn seed(settings: &Settings, demo: bool) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool).await?;
    let schemas = schema_registry::load(&settings.schema_registry).await?;
    let state = jivapay_admin::AppState::new(settings, pool.clone(), schemas)?;
    jivapay_admin::seed::reference(&state).await?;
    println!("reference data and default settings present");
    match &settings.seed.admin_password {
        Some(password) => {
            let login = &settings.seed.admin_login;
            if jivapay_admin::seed::admin(&state, login, password.expose_secret()).await? {
                println!("admin {login:?} created with *:*:*");
            } else {
                println!("admin {login:?} already exists");
            }
        }
        None => println!(
            "no admin created: set JIVAPAY__SEED__ADMIN_PASSWORD to create the first admin"
        ),
    }
    if demo {
        let password = settings.seed.demo_password.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "--demo needs JIVAPAY__SEED__DEMO_PASSWORD, the password of the demo accounts"
            )
        })?;
        let created = jivapay_admin::seed_demo::demo(&state, password.expose_secret()).await?;
        println!("demo data present ({created} people created now)");
    }
    pool.close().await;
    Ok(())
}

pub async fn create_topics(settings: &Settings) -> Result<(), StartupError> {
    let broker = Broker::connect(&settings.kafka, false, "topics create").await?;
    broker.ensure_topics(TOPICS).await?;
    println!(
        "{} topics present with their catalogue partition counts",
        TOPICS.len()
    );
    Ok(())
}

pub fn list_topics() {
    for t in TOPICS {
        println!(
            "{:<24} {:>2} partitions  {:<8} key: {:<24} value: {}",
            t.name,
            t.partitions,
            t.cleanup.as_config(),
            t.key,
            t.value_schema
        );
    }
}
