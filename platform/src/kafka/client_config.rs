//! The one place that sets librdkafka options, so every client behaves the same.

use rdkafka::ClientConfig;

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
/// owns the same partition number of co-partitioned topics.
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
        .set("enable.partition.eof", "false");
    config
}
