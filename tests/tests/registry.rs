//! The Schema Registry API: for the ids found in produced records it returns schemas that
//! decode those records with a plain Avro library, the way a stock Confluent deserializer does;
//! subjects and versions follow the Confluent naming and error format. With an external
//! registry configured, our schemas are registered there and its ids are used.

use apache_avro::Schema;
use axum::routing::post;
use axum::{Json, Router};
use jivapay_platform::kafka::{RecordConsumer, RecordProducer};
use jivapay_schemas::topics::ORDERS_EVENTS;
use jivapay_schemas::{samples, SchemaRegistry, TOPICS};
use jivapay_tests::{broker, unique_group, BrokerKind};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves the admin router on a free port; returns its base URL.
async fn serve_admin(registry: SchemaRegistry) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = jivapay_admin::registry::router(registry);
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn schema_id(framed: &[u8]) -> u32 {
    assert_eq!(framed[0], 0, "magic byte");
    u32::from_be_bytes(framed[1..5].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_returns_the_schemas_of_produced_records() {
    let broker = broker(BrokerKind::Embedded).await;
    broker.ensure_topics(TOPICS).await.unwrap();
    let registry = SchemaRegistry::builtin().unwrap();
    let base = serve_admin(registry.clone()).await;

    let producer = RecordProducer::new(&broker, registry.clone(), "registry-test").unwrap();
    let sent = samples::order_event();
    producer
        .send(ORDERS_EVENTS, &sent.order_id.to_string(), &sent)
        .await
        .unwrap();
    let consumer = RecordConsumer::subscribe(
        &broker,
        registry.clone(),
        &unique_group("registry"),
        &[ORDERS_EVENTS],
    )
    .unwrap();
    let raw = tokio::time::timeout(Duration::from_secs(30), consumer.next_raw())
        .await
        .unwrap()
        .unwrap();
    consumer.close().unwrap();

    for framed in [raw.key.unwrap(), raw.payload.unwrap()] {
        let id = schema_id(&framed);
        let (status, body) = get(&format!("{base}/schemas/ids/{id}")).await;
        assert_eq!(status, 200, "{body}");
        let schema = Schema::parse_str(body["schema"].as_str().unwrap()).unwrap();
        let value = apache_avro::from_avro_datum(&schema, &mut &framed[5..], None).unwrap();
        if id == schema_id(&registry.encode_key("x")) {
            assert_eq!(
                value,
                apache_avro::types::Value::String(sent.order_id.to_string())
            );
        } else {
            let apache_avro::types::Value::Record(fields) = value else {
                panic!("a record")
            };
            let fields: HashMap<_, _> = fields.into_iter().collect();
            assert_eq!(
                fields["external_order_id"],
                apache_avro::types::Value::String(sent.external_order_id.clone())
            );
        }
    }
    producer.close(Duration::from_secs(5)).unwrap();
}

#[tokio::test]
async fn subjects_and_versions_follow_the_confluent_api() {
    let registry = SchemaRegistry::builtin().unwrap();
    let base = serve_admin(registry.clone()).await;

    let (status, subjects) = get(&format!("{base}/subjects")).await;
    assert_eq!(status, 200);
    let subjects: Vec<String> = serde_json::from_value(subjects).unwrap();
    for topic in TOPICS {
        assert!(
            subjects.contains(&format!("{}-value", topic.name)),
            "{}",
            topic.name
        );
        assert!(
            subjects.contains(&format!("{}-key", topic.name)),
            "{}",
            topic.name
        );
    }

    let (status, versions) = get(&format!("{base}/subjects/orders.events-value/versions")).await;
    assert_eq!((status, versions), (200, serde_json::json!([1])));

    let latest_id = registry.latest("order_event").unwrap().id;
    for version in ["latest", "1", "-1"] {
        let (status, body) = get(&format!(
            "{base}/subjects/orders.events-value/versions/{version}"
        ))
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["subject"], "orders.events-value");
        assert_eq!(body["version"], 1);
        assert_eq!(body["id"], latest_id);
        Schema::parse_str(body["schema"].as_str().unwrap()).expect("schema text parses");
    }
    let (status, schema) = get(&format!(
        "{base}/subjects/traders-key/versions/latest/schema"
    ))
    .await;
    assert_eq!((status, schema), (200, serde_json::json!("string")));

    let (status, body) = get(&format!("{base}/subjects/nope-value/versions")).await;
    assert_eq!((status, body["error_code"].as_u64()), (404, Some(40401)));
    let (status, body) = get(&format!("{base}/subjects/orders.events-value/versions/9")).await;
    assert_eq!((status, body["error_code"].as_u64()), (404, Some(40402)));
    let (status, body) = get(&format!(
        "{base}/subjects/orders.events-value/versions/zero"
    ))
    .await;
    assert_eq!((status, body["error_code"].as_u64()), (422, Some(42202)));
    let (status, body) = get(&format!("{base}/schemas/ids/999999")).await;
    assert_eq!((status, body["error_code"].as_u64()), (404, Some(40403)));
}

/// A stand-in for an external Schema Registry (outside our system): assigns ids from 1000 and
/// gives an identical schema the same id under every subject, as Confluent's does.
async fn fake_external_registry() -> (String, Arc<Mutex<Vec<String>>>) {
    let subjects = Arc::new(Mutex::new(Vec::new()));
    let ids: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = subjects.clone();
    let router = Router::new().route(
        "/subjects/{subject}/versions",
        post(
            move |axum::extract::Path(subject): axum::extract::Path<String>,
                  Json(body): Json<Value>| {
                let (seen, ids) = (seen.clone(), ids.clone());
                async move {
                    seen.lock().unwrap().push(subject);
                    let schema = body["schema"].as_str().unwrap().to_owned();
                    let mut ids = ids.lock().unwrap();
                    let next = 1000 + ids.len() as u32;
                    let id = *ids.entry(schema).or_insert(next);
                    Json(serde_json::json!({ "id": id }))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, subjects)
}

#[tokio::test]
async fn an_external_registry_gets_our_schemas_and_its_ids_are_used() {
    let (url, subjects) = fake_external_registry().await;
    let settings = jivapay_platform::settings::SchemaRegistrySettings { url: Some(url) };
    let registry = jivapay_platform::schema_registry::load(&settings)
        .await
        .unwrap();

    let registered = subjects.lock().unwrap().clone();
    for topic in TOPICS {
        assert!(registered.contains(&format!("{}-value", topic.name)));
        assert!(registered.contains(&format!("{}-key", topic.name)));
    }
    let framed = registry.encode(&samples::rate()).unwrap();
    let id = schema_id(&framed);
    assert!(id >= 1000, "uses the external id, got {id}");
    assert_eq!(
        registry
            .decode::<jivapay_schemas::records::Rate>(&framed)
            .unwrap(),
        samples::rate()
    );
    // Registering again (a restart) yields the same ids.
    let again = jivapay_platform::schema_registry::load(&settings)
        .await
        .unwrap();
    assert_eq!(schema_id(&again.encode(&samples::rate()).unwrap()), id);
}

#[tokio::test]
async fn an_unreachable_external_registry_is_a_clear_start_up_error() {
    let settings = jivapay_platform::settings::SchemaRegistrySettings {
        url: Some("http://127.0.0.1:9".into()),
    };
    let err = jivapay_platform::schema_registry::load(&settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Schema Registry at http://127.0.0.1:9"),
        "{err}"
    );
}

/// The interpreter of the venv with the stock Confluent client (set up by `scripts/test`).
fn confluent_python() -> String {
    std::env::var("JIVAPAY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("JIVAPAY_TEST_PYTHON is not set: run the tests with `scripts/test`")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_confluent_consumer_decodes_our_topic() {
    let broker = broker(BrokerKind::Embedded).await;
    broker.ensure_topics(TOPICS).await.unwrap();
    let registry = SchemaRegistry::builtin().unwrap();
    let base = serve_admin(registry.clone()).await;
    let producer = RecordProducer::new(&broker, registry.clone(), "analyst-test").unwrap();
    let transfer = samples::ledger_transfer();
    let topic = jivapay_schemas::topics::LEDGER_TRANSFERS;
    producer
        .send(topic, &transfer.transfer_id.to_string(), &transfer)
        .await
        .unwrap();
    producer.close(Duration::from_secs(5)).unwrap();

    let script = jivapay_tests::package_file("python/read_topic.py");
    let output = tokio::process::Command::new(confluent_python())
        .arg(script)
        .args([broker.bootstrap_servers(), &base, topic, "1", "60"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let line: Value =
        serde_json::from_slice(output.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["key"], transfer.transfer_id.to_string());
    let value = &line["value"];
    assert_eq!(value["transfer_id"], transfer.transfer_id.to_string());
    assert_eq!(value["kind"], "PAY_IN");
    // Decimals arrive as exact decimals at their scale.
    let amounts: Vec<&str> = value["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["-54.054054", "1.081081", "52.432432", "0.540541"]);
}
