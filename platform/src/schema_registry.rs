//! Which schema ids this process writes: the shipped ids, or — when an external Schema
//! Registry is configured — the ids it assigns when our schemas are registered there.

use crate::settings::SchemaRegistrySettings;
use crate::startup::StartupError;
use jivapay_schemas::{SchemaRegistry, SchemaSource};
use std::collections::HashMap;
use std::time::Duration;

/// The registry this process encodes and decodes with.
pub async fn load(settings: &SchemaRegistrySettings) -> Result<SchemaRegistry, StartupError> {
    let builtin = SchemaRegistry::builtin().map_err(|e| StartupError::SchemaRegistry {
        url: "built-in".into(),
        reason: e.to_string(),
    })?;
    match &settings.url {
        None => Ok(builtin),
        Some(url) => register_all(url, &builtin).await,
    }
}

/// Registers every version of every subject (oldest first, so version numbers line up) and
/// builds a registry with the ids the external registry returned. Registering a schema it
/// already has is a no-op there that returns the existing id, so this runs at every start.
pub async fn register_all(
    url: &str,
    builtin: &SchemaRegistry,
) -> Result<SchemaRegistry, StartupError> {
    let fail = |reason: String| StartupError::SchemaRegistry {
        url: url.to_owned(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let base = url.trim_end_matches('/');
    let mut ids: HashMap<(&'static str, u32), u32> = HashMap::new();
    for subject in builtin.subjects() {
        let versions = builtin.subject_versions(&subject).unwrap_or(&[]);
        for schema in versions {
            let response = client
                .post(format!("{base}/subjects/{subject}/versions"))
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .json(&serde_json::json!({ "schema": schema.text() }))
                .send()
                .await
                .map_err(|e| fail(format!("register {subject}: {e}")))?;
            let status = response.status();
            let body: serde_json::Value = response
                .json()
                .await
                .map_err(|e| fail(format!("register {subject}: {e}")))?;
            let id = body
                .get("id")
                .and_then(serde_json::Value::as_u64)
                .filter(|_| status.is_success())
                .ok_or_else(|| fail(format!("register {subject}: HTTP {status}: {body}")))?;
            let key = (schema.name(), schema.version());
            match ids.insert(key, id as u32) {
                Some(previous) if previous != id as u32 => {
                    return Err(fail(format!(
                        "{} v{} got ids {previous} and {id} under different subjects",
                        key.0, key.1
                    )))
                }
                _ => {}
            }
        }
    }
    SchemaRegistry::with_ids(|s: &SchemaSource| ids.get(&(s.name, s.version)).copied())
        .map_err(|e| fail(e.to_string()))
}
