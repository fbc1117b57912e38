//! Against both brokers (embedded mock cluster and Tansu): topics from the catalogue are created
//! with their partition counts, idempotently; a keyed record lands on the partition the Java
//! client would pick and is consumed from there by a consumer group; committed offsets survive
//! a consumer restart; a malformed record is dead-lettered, not fatal; the components of one
//! process share one producer.

use jivapay_platform::kafka::{Broker, RecordConsumer, RecordProducer};
use jivapay_schemas::records::{DeadLetter, OrderEvent};
use jivapay_schemas::topics::DEAD_LETTERS;
use jivapay_schemas::{samples, Cleanup, SchemaRegistry, TopicSpec, TOPICS};
use jivapay_tests::murmur2::java_partition;
use jivapay_tests::{broker, unique_group, unique_topic, BrokerKind};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

fn registry() -> SchemaRegistry {
    SchemaRegistry::builtin().unwrap()
}

/// A test topic of its own, with the catalogue's stream shape.
async fn test_topic(broker: &Broker, prefix: &str, partitions: i32) -> &'static str {
    let name: &'static str = Box::leak(unique_topic(prefix).into_boxed_str());
    let spec = TopicSpec {
        name,
        key: "test key",
        partitions,
        cleanup: Cleanup::Delete,
        value_schema: "order_event",
    };
    broker
        .ensure_topics(&[spec])
        .await
        .expect("test topic created");
    name
}

fn event(n: usize) -> OrderEvent {
    OrderEvent {
        external_order_id: format!("ext-{n}"),
        order_id: Uuid::new_v4().into(),
        ..samples::order_event()
    }
}

/// Time a consumer may wait for a record; Tansu can be slow to hand out assignments.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(90);

async fn receive(consumer: &RecordConsumer) -> jivapay_platform::kafka::Consumed<OrderEvent> {
    tokio::time::timeout(RECEIVE_TIMEOUT, consumer.next::<OrderEvent>())
        .await
        .expect("a record arrives in time")
        .expect("a record decodes")
}

async fn catalogue_topics_are_created_with_their_partition_counts(kind: BrokerKind) {
    let broker = broker(kind).await;
    broker.ensure_topics(TOPICS).await.expect("first creation");
    broker
        .ensure_topics(TOPICS)
        .await
        .expect("second creation is a no-op");
    let names: Vec<&str> = TOPICS.iter().map(|t| t.name).collect();
    let counts: HashMap<String, i32> = broker
        .partition_counts(&names)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for spec in TOPICS {
        assert_eq!(
            counts.get(spec.name),
            Some(&spec.partitions),
            "{}",
            spec.name
        );
    }
}

async fn a_topic_with_another_partition_count_is_refused(kind: BrokerKind) {
    let broker = broker(kind).await;
    let name = test_topic(&broker, "mismatch", 2).await;
    let spec = TopicSpec {
        name,
        key: "k",
        partitions: 3,
        cleanup: Cleanup::Delete,
        value_schema: "order_event",
    };
    let err = broker
        .ensure_topics(&[spec])
        .await
        .expect_err("partition mismatch is an error");
    assert!(
        err.to_string()
            .contains("has 2 partitions, the catalogue says 3"),
        "{err}"
    );
}

async fn keyed_records_land_on_the_java_partition_and_offsets_survive_a_restart(kind: BrokerKind) {
    let broker = broker(kind).await;
    let topic = test_topic(&broker, "keyed", 8).await;
    let registry = registry();
    let producer = RecordProducer::new(&broker, registry.clone(), "test-producer").unwrap();

    let mut expected = HashMap::new();
    for n in 0..16 {
        let record = event(n);
        let key = record.order_id.to_string();
        let delivered = producer.send(topic, &key, &record).await.unwrap();
        let want = java_partition(&registry.encode_key(&key), 8);
        assert_eq!(delivered.partition, want, "key {key}");
        expected.insert(record.order_id, (want, record));
    }

    let group = unique_group("keyed");
    let consumer = RecordConsumer::subscribe(&broker, registry.clone(), &group, &[topic]).unwrap();
    for _ in 0..expected.len() {
        let got = receive(&consumer).await;
        let value = got.value.clone().expect("not a tombstone");
        let (partition, sent) = &expected[&value.order_id];
        assert_eq!(got.partition, *partition);
        assert_eq!(&value, sent);
        assert_eq!(got.key, value.order_id.to_string());
        consumer.ack(&got.topic, got.partition, got.offset).unwrap();
    }
    consumer.close().expect("offsets committed on close");

    // Records produced while no member is running must be the only ones the next member sees.
    let mut later = HashMap::new();
    for n in 100..104 {
        let record = event(n);
        producer
            .send(topic, &record.order_id.to_string(), &record)
            .await
            .unwrap();
        later.insert(record.order_id, record);
    }
    let restarted = RecordConsumer::subscribe(&broker, registry.clone(), &group, &[topic]).unwrap();
    for _ in 0..later.len() {
        let got = receive(&restarted).await;
        let value = got.value.expect("not a tombstone");
        assert!(
            later.contains_key(&value.order_id),
            "an already committed record came back"
        );
        restarted
            .ack(&got.topic, got.partition, got.offset)
            .unwrap();
    }
    // Nothing else is pending for this group.
    let extra = tokio::time::timeout(Duration::from_secs(2), restarted.next::<OrderEvent>()).await;
    assert!(extra.is_err(), "unexpected record: {extra:?}");
    restarted.close().unwrap();
    producer.close(Duration::from_secs(5)).unwrap();
}

async fn a_malformed_record_is_dead_lettered_and_skipped(kind: BrokerKind) {
    let broker = broker(kind).await;
    broker.ensure_topics(TOPICS).await.unwrap();
    let topic = test_topic(&broker, "malformed", 1).await;
    let registry = registry();
    let producer = RecordProducer::new(&broker, registry.clone(), "test-producer").unwrap();
    let key = registry.encode_key("k");
    let first = event(1);
    producer.send(topic, "k", &first).await.unwrap();
    let bad = producer
        .send_bytes(topic, Some(&key), Some(b"{\"not\":\"avro\"}"))
        .await
        .unwrap();
    let wrong_type = registry.encode(&samples::rate()).unwrap();
    let bad2 = producer
        .send_bytes(topic, Some(&key), Some(&wrong_type))
        .await
        .unwrap();
    let second = event(2);
    producer.send(topic, "k", &second).await.unwrap();

    let consumer =
        RecordConsumer::subscribe(&broker, registry.clone(), &unique_group("dlq"), &[topic])
            .unwrap();
    assert_eq!(receive(&consumer).await.value, Some(first));
    assert_eq!(receive(&consumer).await.value, Some(second));
    consumer.close().unwrap();

    // Both bad records are on the dead-letter topic with where they came from.
    let letters = RecordConsumer::subscribe(
        &broker,
        registry,
        &unique_group("dlq-read"),
        &[DEAD_LETTERS],
    )
    .unwrap();
    let mut found = Vec::new();
    while found.len() < 2 {
        let letter = tokio::time::timeout(RECEIVE_TIMEOUT, letters.next::<DeadLetter>())
            .await
            .expect("dead letter arrives")
            .unwrap()
            .value
            .unwrap();
        if letter.source_topic == topic {
            found.push(letter);
        }
    }
    letters.close().unwrap();
    found.sort_by_key(|l| l.source_offset);
    assert_eq!(found[0].source_offset, bad.offset);
    assert_eq!(
        found[0].payload.as_deref(),
        Some(&b"{\"not\":\"avro\"}"[..])
    );
    assert!(
        found[0].error.contains("Confluent wire format"),
        "{}",
        found[0].error
    );
    assert_eq!(found[1].source_offset, bad2.offset);
    assert!(
        found[1].error.contains("expected order_event"),
        "{}",
        found[1].error
    );
    producer.close(Duration::from_secs(5)).unwrap();
}

async fn components_of_one_process_share_one_producer(kind: BrokerKind) {
    let broker = broker(kind).await;
    let topic = test_topic(&broker, "shared", 1).await;
    let registry = registry();
    let gateway = RecordProducer::shared(&broker, registry.clone()).unwrap();
    let processor = RecordProducer::shared(&broker.clone(), registry.clone()).unwrap();
    let own = RecordProducer::new(&broker, registry.clone(), "test-own").unwrap();
    assert!(gateway.shares_client_with(&processor));
    assert!(!gateway.shares_client_with(&own));

    // Both senders' records arrive, each acknowledged to its own sender.
    let (first, second) = (event(1), event(2));
    let a = gateway.send(topic, "a", &first).await.unwrap();
    let b = processor.send(topic, "b", &second).await.unwrap();
    assert_eq!(b.offset, a.offset + 1);
    let consumer =
        RecordConsumer::subscribe(&broker, registry, &unique_group("shared"), &[topic]).unwrap();
    let got: Vec<OrderEvent> = vec![
        receive(&consumer).await.value.expect("a value"),
        receive(&consumer).await.value.expect("a value"),
    ];
    assert_eq!(got, vec![first, second]);
    consumer.close().unwrap();
    gateway.close(Duration::from_secs(5)).unwrap();
    own.close(Duration::from_secs(5)).unwrap();
}

macro_rules! on_both_brokers {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(jivapay_tests::BrokerKind::Embedded).await;
                }
            )*
        }
        mod tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(jivapay_tests::BrokerKind::Tansu).await;
                }
            )*
        }
    };
}

on_both_brokers!(
    catalogue_topics_are_created_with_their_partition_counts,
    a_topic_with_another_partition_count_is_refused,
    keyed_records_land_on_the_java_partition_and_offsets_survive_a_restart,
    a_malformed_record_is_dead_lettered_and_skipped,
    components_of_one_process_share_one_producer,
);
