//! Fencing under load (issue 14 (e)): every component in its own process, two trader books
//! sharing the work; one is frozen (SIGSTOP) for longer than its session while orders keep
//! coming, so the group gives its partitions to the other, then thawed (SIGCONT) mid-batch
//! perhaps, with prefetched records to process. Whatever it writes late must not count: every
//! accepted order ends in one final state and every balance is what the completed orders say.

use jivapay_platform::kafka::Broker;
use jivapay_schemas::TOPICS;
use jivapay_tests::fleet::Fleet;
use jivapay_tests::postgres::OwnPostgres;
use jivapay_tests::process::seed_demo;
use jivapay_tests::traffic::{check_books, Traffic};
use std::path::Path;
use std::time::{Duration, Instant};

const BOOK: &str = "processor trader-book";

/// Longer than the consumers' `session.timeout.ms` (10 s).
const FROZEN_FOR: Duration = Duration::from_secs(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_trader_book_frozen_past_its_session_under_load_every_component_its_own_process() {
    let binary = Path::new(env!("CARGO_BIN_EXE_jivapay"));
    let pg = OwnPostgres::start();
    seed_demo(binary, &pg.url);
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let broker = Broker::embedded(Duration::from_secs(10)).unwrap();
    broker.ensure_topics(TOPICS).await.unwrap();
    let env = [
        ("JIVAPAY__DATABASE__URL", pg.url.as_str()),
        ("JIVAPAY__KAFKA__BROKERS", broker.bootstrap_servers()),
    ];
    let fleet = Fleet::start_with(binary, &env, &[BOOK]).await;
    let mut traffic = Traffic::sign_in(&fleet.ingest, &fleet.admin, "frozen").await;
    traffic.wait_until_assigning().await;

    drive(&mut traffic, Duration::from_secs(5)).await;
    fleet.signal(BOOK, 0, "STOP");
    drive(&mut traffic, FROZEN_FOR).await;
    fleet.signal(BOOK, 0, "CONT");
    drive(&mut traffic, Duration::from_secs(15)).await;

    if let Err(pending) = traffic.until_final(Duration::from_secs(120)).await {
        let open: usize = pending.values().map(Vec::len).sum();
        panic!(
            "{open} of {} accepted orders not final in time:\n{}",
            traffic.accepted.len(),
            traffic.explain(&db, &pending).await
        );
    }
    assert!(
        traffic.accepted.len() > 40,
        "{} accepted, {} refused",
        traffic.accepted.len(),
        traffic.refused
    );
    check_books(&db, &traffic.accepted).await;
    fleet.terminate();
    db.close().await;
    drop(broker);
}

/// Orders and the customers' and traders' answers for `for_how_long`.
async fn drive(traffic: &mut Traffic, for_how_long: Duration) {
    let until = Instant::now() + for_how_long;
    while Instant::now() < until {
        for _ in 0..4 {
            traffic.post().await;
        }
        traffic.act().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
