//! The one place that sets librdkafka options, so every client behaves the same.

use rdkafka::ClientConfig;
use std::sync::atomic::{AtomicU64, Ordering};

/// librdkafka's own default of `fetch.wait.max.ms`.
pub const DEFAULT_FETCH_WAIT_MAX_MS: u64 = 500;
/// The wait with the embedded mock cluster, which holds every empty fetch for the whole wait:
/// short enough that the eight hops of an order cost little, long enough that idle consumers
/// do not keep the broker thread busy (at 10 ms it took ≈ 0.4 cores, docs/benchmarks.md).
pub const EMBEDDED_FETCH_WAIT_MAX_MS: u64 = 50;

static FETCH_WAIT_MAX_MS: AtomicU64 = AtomicU64::new(DEFAULT_FETCH_WAIT_MAX_MS);

/// Sets `fetch.wait.max.ms` of every consumer this process creates from now on (from the
/// setting `kafka.fetch_wait_max_ms`, applied by [`super::Broker::connect`]). One value per
/// process, so every consumer (runtime, tables, changelogs) gets it without plumbing.
pub fn set_fetch_wait_max_ms(ms: u64) {
    FETCH_WAIT_MAX_MS.store(ms.max(1), Ordering::Relaxed);
}

/// Producers: idempotent with `acks=all`, and the Java client's partitioner so that any Kafka
/// client writing the same key lands on the same partition.
pub fn producer_config(bootstrap: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("socket.keepalive.enable", "true");
    config
}

/// Consumers: manual offset store (an offset is stored only after its record was handled),
/// committed in the background and once more on close; range assignment so that one instance
/// owns the same partition number of co-partitioned topics. `fetch.wait.max.ms` is the
/// process's setting (see [`set_fetch_wait_max_ms`]): librdkafka's mock cluster (the embedded
/// broker) answers an empty fetch only after the full wait, even when records arrive in the
/// meantime, so with the default 500 ms each idle hop of the pipeline costs up to 500 ms there.
pub fn consumer_config(bootstrap: &str, group_id: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_id)
        .set("client.id", client_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("enable.partition.eof", "false")
        .set(
            "fetch.wait.max.ms",
            FETCH_WAIT_MAX_MS.load(Ordering::Relaxed).to_string(),
        );
    config
}
