//! The compose file cannot be run here (no Docker engine), so this keeps it from rotting: every
//! environment variable it gives our services is a real setting (they load, unknown keys are
//! refused), and every component of the binary has a service running it.

use jivapay::{processor_names, sink_names, COMPONENT_COMMANDS};
use jivapay_platform::Settings;
use serde_norway::Value;
use std::collections::HashMap;

fn compose() -> Value {
    // The package's folder at run time (a binary reused from a shared target folder may have
    // been built in another checkout).
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{dir}/../compose/docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("compose/docker-compose.yml exists");
    let mut value: Value = serde_norway::from_str(&text).expect("valid YAML");
    value.apply_merge().expect("merge keys resolve");
    value
}

/// Services whose image is built from our Dockerfile (they run `jivapay`).
fn our_services(compose: &Value) -> Vec<(String, &Value)> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .filter(|(_, s)| !s["build"].is_null())
        .map(|(name, s)| (name.as_str().unwrap().to_owned(), s))
        .collect()
}

fn command_of(service: &Value) -> String {
    match &service["command"] {
        Value::String(s) => s.clone(),
        Value::Sequence(parts) => parts
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn environment_of(service: &Value) -> HashMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    };
    match &service["environment"] {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), scalar(v)))
            .collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|item| {
                let item = item.as_str().unwrap();
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => HashMap::new(),
    }
}

/// Resolves `${VAR…}` interpolations as Compose would with an operator environment that sets
/// only the required variables: `${VAR:-default}` gives the default, anything else a value.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed interpolation") + start;
        let expression = &rest[start + 2..end];
        let name = expression.split([':', '-', '?']).next().unwrap_or_default();
        match expression.split_once(":-") {
            Some((_, default)) => out.push_str(default),
            None => out.push_str(&operator_value(name)),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// What an operator following compose/README.md would set each required variable to.
fn operator_value(name: &str) -> String {
    match name {
        "JWT_SECRET" => "0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        "DATA_KEY" => "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".into(),
        _ => "operator-value".into(),
    }
}

#[test]
fn every_variable_given_to_our_services_is_a_real_setting() {
    let compose = compose();
    let services = our_services(&compose);
    assert!(!services.is_empty());
    for (name, service) in services {
        let env = environment_of(service);
        assert!(!env.is_empty(), "{name} has no environment");
        for key in env.keys() {
            assert!(
                key.starts_with("JIVAPAY__"),
                "{name} sets {key}, which is not a setting of ours"
            );
        }
        let env: HashMap<String, String> =
            env.into_iter().map(|(k, v)| (k, interpolate(&v))).collect();
        Settings::load_from(None, Some(env))
            .unwrap_or_else(|e| panic!("{name}: its environment is not valid settings: {e}"));
    }
}

#[test]
fn the_file_fails_on_an_unknown_setting() {
    // The check above can fail: an unknown variable is refused.
    let env = HashMap::from([(
        "JIVAPAY__KAFKA__BOOTSTRAP".to_owned(),
        "kafka:9092".to_owned(),
    )]);
    assert!(Settings::load_from(None, Some(env)).is_err());
}

#[test]
fn every_component_has_a_service() {
    let compose = compose();
    let commands: Vec<String> = our_services(&compose)
        .iter()
        .map(|(_, s)| command_of(s))
        .collect();
    for component in COMPONENT_COMMANDS
        .iter()
        .chain(&["migrate", "topics create"])
    {
        assert!(
            commands.iter().any(|c| c == component),
            "no service runs `jivapay {component}`; services run {commands:?}"
        );
    }
}

#[test]
fn the_component_list_covers_every_processor_and_sink() {
    for name in processor_names() {
        assert!(
            COMPONENT_COMMANDS.contains(&format!("processor {name}").as_str()),
            "{name}"
        );
    }
    for name in sink_names() {
        assert!(
            COMPONENT_COMMANDS.contains(&format!("sink {name}").as_str()),
            "{name}"
        );
    }
}

#[test]
fn the_deployment_has_its_infrastructure() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let images: Vec<&str> = services
        .values()
        .filter_map(|s| s["image"].as_str())
        .collect();
    for wanted in ["apache/kafka", "postgres", "minio/minio"] {
        assert!(
            images.iter().any(|i| i.starts_with(wanted)),
            "no {wanted} service: {images:?}"
        );
    }
}
