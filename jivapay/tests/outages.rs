//! The system under continuous load while its dependencies fail for real — run as `jivapay all`
//! and as every component in a process of its own: PostgreSQL stopped and started three times,
//! PostgreSQL black-holed for 20 s, the broker down and black-holed for longer than
//! `message.timeout.ms`. Each time `/readyz` must answer 503 during the outage and 200 after
//! it, and at the end every accepted order is final and in the projection, every transfer sums
//! to zero and every balance equals what the test computes from the completed orders.

use jivapay_platform::kafka::Broker;
use jivapay_schemas::TOPICS;
use jivapay_tests::black_hole::BlackHole;
use jivapay_tests::fault_proxy::FaultProxy;
use jivapay_tests::fleet::Fleet;
use jivapay_tests::postgres::OwnPostgres;
use jivapay_tests::process::{free_port, seed_demo, start_all, Running};
use jivapay_tests::tansu::OwnTansu;
use jivapay_tests::traffic::{check_books, ReadyzProbe, Traffic};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_jivapay"))
}

/// Migrates and seeds the demo data into the cluster at `url`.
fn prepare(url: &str) {
    seed_demo(binary(), url);
}

/// One outage: from when it began to when `/readyz` answered 200 again.
struct Outage {
    began: Instant,
    ready_again: Instant,
}

/// `jivapay all` under a supervisor, as a deployment runs it: when the process exits with an
/// error (a loop met a failure no retry mends), it is started again on the same ports.
struct Supervised {
    running: Arc<Mutex<Option<Running>>>,
    stop: Arc<AtomicBool>,
    restarts: Arc<AtomicUsize>,
    watcher: Option<std::thread::JoinHandle<()>>,
    ingest: String,
    admin: String,
}

impl Supervised {
    fn start(env: &[(&str, &str)]) -> Self {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push((
            "JIVAPAY__HTTP__INGEST_ADDR".into(),
            format!("127.0.0.1:{}", free_port()),
        ));
        env.push((
            "JIVAPAY__HTTP__ADMIN_ADDR".into(),
            format!("127.0.0.1:{}", free_port()),
        ));
        let start = move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            start_all(binary(), &env)
        };
        let first = start();
        let (ingest, admin) = (first.ingest.clone(), first.admin.clone());
        let running = Arc::new(Mutex::new(Some(first)));
        let stop = Arc::new(AtomicBool::new(false));
        let restarts = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let (running, stop, restarts) = (running.clone(), stop.clone(), restarts.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                    let mut guard = running.lock().unwrap();
                    let exited = guard.as_mut().and_then(|r| r.child.try_wait().unwrap());
                    if let Some(status) = exited {
                        eprintln!("jivapay all exited ({status}); the supervisor starts it again");
                        restarts.fetch_add(1, Ordering::SeqCst);
                        *guard = Some(start());
                    }
                }
            })
        };
        Self {
            running,
            stop,
            restarts,
            watcher: Some(watcher),
            ingest,
            admin,
        }
    }

    fn terminate(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(watcher) = self.watcher.take() {
            watcher.join().unwrap();
        }
        if let Some(running) = self.running.lock().unwrap().take() {
            running.terminate();
        }
        self.restarts.load(Ordering::SeqCst)
    }
}

/// A failing test stops the watcher; the process itself is killed when `Running` drops.
impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(watcher) = self.watcher.take() {
            watcher.join().ok();
        }
    }
}

/// The system under test, however it is run.
enum App {
    /// `jivapay all`.
    All(Supervised),
    /// Every component in its own process.
    Fleet(Fleet),
}

impl App {
    /// Starts the system the way `how` says, with `env`.
    async fn start(how: Run, env: &[(&str, &str)]) -> Self {
        match how {
            Run::All => App::All(Supervised::start(env)),
            Run::Fleet => App::Fleet(Fleet::start(binary(), env).await),
        }
    }

    fn apis(&self) -> (&str, &str) {
        match self {
            App::All(all) => (&all.ingest, &all.admin),
            App::Fleet(fleet) => (&fleet.ingest, &fleet.admin),
        }
    }

    fn readiness(&self) -> Vec<String> {
        match self {
            App::All(all) => vec![format!("{}/readyz", all.admin)],
            App::Fleet(fleet) => fleet.readiness.clone(),
        }
    }

    /// Stops it; how often a process had to be started again.
    fn terminate(self) -> usize {
        match self {
            App::All(all) => all.terminate(),
            App::Fleet(fleet) => fleet.terminate(),
        }
    }
}

#[derive(Clone, Copy)]
enum Run {
    All,
    Fleet,
}

/// Runs the system as `how` says with `env`, drives traffic while `faults` runs (it gets the
/// readiness probe and returns its outages), then lets every order finish and checks the books
/// on `db`. Returns how often a supervisor had to start a process again.
async fn through_outages<F, Fut>(
    how: Run,
    env: &[(&str, &str)],
    db: &sqlx::PgPool,
    faults: F,
) -> usize
where
    F: FnOnce(Arc<ReadyzProbe>) -> Fut,
    Fut: Future<Output = Vec<Outage>> + Send + 'static,
{
    let app = App::start(how, env).await;
    let (ingest, admin) = app.apis();
    let mut traffic = Traffic::sign_in(ingest, admin, "outage").await;
    traffic.wait_until_assigning().await;
    let probe = Arc::new(ReadyzProbe::start_all(app.readiness()));
    probe.wait_for(200, Duration::from_secs(60)).await;
    let faults = tokio::spawn(faults(probe.clone()));
    while !faults.is_finished() {
        for _ in 0..4 {
            traffic.post().await;
        }
        traffic.act().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let outages = faults.await.unwrap();
    // A little more traffic once everything is back.
    for _ in 0..10 {
        traffic.post().await;
    }
    if let Err(pending) = traffic.until_final(Duration::from_secs(120)).await {
        let open: usize = pending.values().map(Vec::len).sum();
        panic!(
            "{open} of {} accepted orders not final in time:\n{}",
            traffic.accepted.len(),
            traffic.explain(db, &pending).await
        );
    }
    for (n, outage) in outages.iter().enumerate() {
        assert!(
            probe.answered(503, outage.began, outage.ready_again),
            "outage {n}: /readyz never answered 503"
        );
    }
    assert!(
        traffic.accepted.len() > 40,
        "{} accepted, {} refused",
        traffic.accepted.len(),
        traffic.refused
    );
    check_books(db, &traffic.accepted).await;
    app.terminate()
}

async fn blocking(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Stops PostgreSQL, waits `down`, starts it again, waits until ready: `times` times.
async fn restarts(pg: Arc<OwnPostgres>, probe: Arc<ReadyzProbe>, times: usize) -> Vec<Outage> {
    let mut outages = Vec::new();
    for _ in 0..times {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let began = Instant::now();
        let stopped = pg.clone();
        blocking(move || stopped.stop()).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let started = pg.clone();
        blocking(move || started.resume()).await;
        let ready_again = probe.wait_for(200, Duration::from_secs(90)).await;
        outages.push(Outage { began, ready_again });
    }
    outages
}

/// The broker the processes share: `jivapay all`'s embedded one, or one the test runs.
enum Brokers {
    Embedded,
    /// An embedded broker hosted by the test (separate processes cannot share one otherwise).
    Hosted(Broker),
    Tansu(OwnTansu),
}

impl Brokers {
    fn bootstrap(&self) -> String {
        match self {
            Brokers::Embedded => "embedded".to_owned(),
            Brokers::Hosted(broker) => broker.bootstrap_servers().to_owned(),
            Brokers::Tansu(tansu) => tansu.bootstrap.clone(),
        }
    }

    /// A broker for separate processes, its topics created (as a deployment's are).
    async fn for_fleet(tansu: bool) -> Self {
        let (brokers, broker) = if tansu {
            let own = OwnTansu::start();
            let broker = Broker::external(&own.bootstrap, Duration::from_secs(30))
                .await
                .unwrap();
            (Brokers::Tansu(own), broker)
        } else {
            let broker = Broker::embedded(Duration::from_secs(10)).unwrap();
            (Brokers::Hosted(broker.clone()), broker)
        };
        broker.ensure_topics(TOPICS).await.unwrap();
        brokers
    }
}

async fn postgres_restarted_three_times(how: Run, brokers: Brokers) {
    let pg = Arc::new(OwnPostgres::start());
    prepare(&pg.url);
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let bootstrap = brokers.bootstrap();
    let env = [
        ("JIVAPAY__DATABASE__URL", pg.url.as_str()),
        ("JIVAPAY__KAFKA__BROKERS", bootstrap.as_str()),
    ];
    let restarted = pg.clone();
    let exits = through_outages(how, &env, &db, move |probe| restarts(restarted, probe, 3)).await;
    assert_eq!(
        exits, 0,
        "PostgreSQL outages are ridden out without a restart"
    );
    db.close().await;
    drop(brokers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_postgres_restarted_three_times_under_load() {
    postgres_restarted_three_times(Run::All, Brokers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_postgres_restarted_three_times_under_load_on_tansu() {
    postgres_restarted_three_times(Run::All, Brokers::Tansu(OwnTansu::start())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_postgres_restarted_three_times_under_load_every_component_its_own_process() {
    postgres_restarted_three_times(Run::Fleet, Brokers::for_fleet(false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_postgres_restarted_three_times_under_load_every_component_its_own_process_on_tansu() {
    postgres_restarted_three_times(Run::Fleet, Brokers::for_fleet(true).await).await;
}

/// Takes the embedded broker the test hosts down for `held`, once (librdkafka's mock cluster
/// then refuses every connection), and brings it back.
async fn broker_down(broker: Broker, probe: Arc<ReadyzProbe>, held: Duration) -> Vec<Outage> {
    let embedded = move |up: bool| {
        let broker = broker.embedded_broker().expect("a hosted embedded broker");
        broker
            .set_up(up)
            .expect("the broker goes down and comes back");
    };
    let back = embedded.clone();
    one_outage(probe, held, move || embedded(false), move || back(true)).await
}

/// Drops every packet to and from the embedded broker the test hosts for `held`, once: open
/// connections stall and new ones get no answer, on every connection a client opens (the
/// mock cluster advertises its own port, so a proxy in front of it would see only the first).
async fn broker_black_holed(
    broker: Broker,
    probe: Arc<ReadyzProbe>,
    held: Duration,
) -> Vec<Outage> {
    let ports: Vec<u16> = broker
        .bootstrap_servers()
        .split(',')
        .map(|server| {
            let port = server.rsplit(':').next().expect("host:port");
            port.parse().expect("a port")
        })
        .collect();
    let hole = Arc::new(Mutex::new(None));
    let filled = hole.clone();
    one_outage(
        probe,
        held,
        move || *hole.lock().unwrap() = Some(BlackHole::hold(&ports)),
        move || drop(filled.lock().unwrap().take()),
    )
    .await
}

/// Runs the system as `how` says on an embedded broker the test hosts, through `outage` of
/// that broker: nothing accepted may be lost.
async fn through_a_broker_outage<F, Fut>(how: Run, outage: F)
where
    F: FnOnce(Broker, Arc<ReadyzProbe>) -> Fut,
    Fut: Future<Output = Vec<Outage>> + Send + 'static,
{
    let pg = OwnPostgres::start();
    prepare(&pg.url);
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let brokers = Brokers::for_fleet(false).await;
    let Brokers::Hosted(broker) = &brokers else {
        unreachable!("for_fleet(false) hosts an embedded broker")
    };
    let bootstrap = brokers.bootstrap();
    let env = [
        ("JIVAPAY__DATABASE__URL", pg.url.as_str()),
        ("JIVAPAY__KAFKA__BROKERS", bootstrap.as_str()),
    ];
    let broker = broker.clone();
    through_outages(how, &env, &db, move |probe| outage(broker, probe)).await;
    db.close().await;
    drop(brokers);
}

const LONGER_THAN_MESSAGE_TIMEOUT: Duration = Duration::from_secs(45);

/// The broker down for longer than the producers' `message.timeout.ms` (30 s), every
/// component in its own process: sends time out and are retried, consumers rejoin, and nothing
/// accepted is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_broker_down_for_45_seconds_under_load_every_component_its_own_process() {
    through_a_broker_outage(Run::Fleet, |broker, probe| {
        broker_down(broker, probe, LONGER_THAN_MESSAGE_TIMEOUT)
    })
    .await;
}

/// The broker black-holed for longer than `message.timeout.ms`, as `jivapay all` under a
/// supervisor: sends time out and are retried (a producer the broker fenced ends the process,
/// which its supervisor starts again), and nothing accepted is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_broker_black_holed_for_45_seconds_under_load() {
    through_a_broker_outage(Run::All, |broker, probe| {
        broker_black_holed(broker, probe, LONGER_THAN_MESSAGE_TIMEOUT)
    })
    .await;
}

/// The same, every component in its own process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_broker_black_holed_for_45_seconds_under_load_every_component_its_own_process() {
    through_a_broker_outage(Run::Fleet, |broker, probe| {
        broker_black_holed(broker, probe, LONGER_THAN_MESSAGE_TIMEOUT)
    })
    .await;
}

/// Black-holes `proxy` for `held`, once.
async fn black_hole(
    proxy: Arc<FaultProxy>,
    probe: Arc<ReadyzProbe>,
    held: Duration,
) -> Vec<Outage> {
    let restored = proxy.clone();
    one_outage(
        probe,
        held,
        move || proxy.blackhole(),
        move || restored.restore(),
    )
    .await
}

/// One outage of `held`, begun by `begin` after a few seconds of traffic and ended by `end`;
/// over when `/readyz` answers 200 again.
async fn one_outage(
    probe: Arc<ReadyzProbe>,
    held: Duration,
    begin: impl FnOnce(),
    end: impl FnOnce(),
) -> Vec<Outage> {
    tokio::time::sleep(Duration::from_secs(4)).await;
    let began = Instant::now();
    begin();
    tokio::time::sleep(held).await;
    end();
    let ready_again = probe.wait_for(200, Duration::from_secs(120)).await;
    vec![Outage { began, ready_again }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_postgres_black_holed_for_20_seconds_under_load() {
    let pg = OwnPostgres::start();
    prepare(&pg.url);
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let proxy = Arc::new(FaultProxy::start(&format!("127.0.0.1:{}", pg.port)).await);
    let through_proxy = pg
        .url
        .replace(&pg.port.to_string(), &proxy.port().to_string());
    let env = [("JIVAPAY__DATABASE__URL", through_proxy.as_str())];
    let held = proxy.clone();
    let exits = through_outages(Run::All, &env, &db, move |probe| {
        black_hole(held, probe, Duration::from_secs(20))
    })
    .await;
    assert_eq!(
        exits, 0,
        "a PostgreSQL outage is ridden out without a restart"
    );
    db.close().await;
}

/// Longer than the producers' `message.timeout.ms` (30 s): sends fail and are retried. Tansu
/// then fences the idempotent producer (after librdkafka's epoch bump): a failure no retry in
/// the process mends, so `jivapay all` exits and its supervisor starts it again — with
/// nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "not passing on Tansu 0.6.0: after the black hole the fenced producer ends the process \
            and it restarts, but Tansu hands the restarted static members an empty assignment, so \
            the orders in flight never move; the same black hole passes on the embedded broker \
            (docs/testing.md)"]
async fn e2e_broker_black_holed_for_45_seconds_under_load_on_tansu() {
    let pg = OwnPostgres::start();
    prepare(&pg.url);
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let tansu_port = free_port();
    let proxy = Arc::new(FaultProxy::start(&format!("127.0.0.1:{tansu_port}")).await);
    let tansu = OwnTansu::start_advertising(tansu_port, proxy.port());
    // Static membership, as on Tansu after kills (docs/testing.md): every member's session
    // expires in the black hole, and dynamic members that rejoin Tansu together can be left
    // without partitions.
    let env = [
        ("JIVAPAY__DATABASE__URL", pg.url.as_str()),
        ("JIVAPAY__KAFKA__BROKERS", tansu.bootstrap.as_str()),
        ("JIVAPAY__KAFKA__INSTANCE_ID", "outage-1"),
    ];
    let held = proxy.clone();
    through_outages(Run::All, &env, &db, move |probe| {
        black_hole(held, probe, LONGER_THAN_MESSAGE_TIMEOUT)
    })
    .await;
    db.close().await;
    drop(tansu);
}
