//! Settings, layered: defaults (here) → an optional TOML file (`--config` or `JIVAPAY_CONFIG`)
//! → environment variables `JIVAPAY__<SECTION>__<FIELD>` (e.g. `JIVAPAY__KAFKA__BROKERS`).
//!
//! Unknown keys are refused, so a misspelt variable fails at start-up instead of being ignored.
//! Secrets are `SecretString`: their `Debug` output is redacted, so settings can be logged.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub schema_registry: SchemaRegistrySettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub receipts: ReceiptsSettings,
    pub auth: AuthSettings,
    pub security: SecuritySettings,
    pub seed: SeedSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/db`. Required by every component that touches
    /// PostgreSQL; it carries the password, so it is a secret.
    pub url: Option<SecretString>,
    /// Connections in the pool of one process.
    pub max_connections: u32,
    /// How long start-up waits for the first connection before giving up.
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            connect_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// `embedded` hosts librdkafka's mock cluster in this process (only for `jivapay all` and
    /// tests); otherwise a comma-separated `host:port` list of an external broker.
    pub brokers: String,
    /// Prefix of consumer group ids: `<prefix>.<component>`.
    pub group_prefix: String,
    /// How long start-up waits for the broker's metadata before giving up.
    pub connect_timeout_secs: u64,
    /// A stable name of this process among the instances of its components (a host or pod
    /// name), used as the processors' static group membership (`group.instance.id`): a
    /// processor restarted under the same name takes its partitions back at once instead of
    /// waiting for the group to notice the old member is gone. Unset: dynamic membership.
    /// Two live processes must never share one.
    pub instance_id: Option<String>,
    /// Consumers' `fetch.wait.max.ms`: how long the broker may hold an empty fetch. A real
    /// Kafka broker answers as soon as records arrive; the embedded mock cluster waits it out,
    /// so there it bounds the latency of every idle hop (see docs/benchmarks.md). Unset: 50 ms
    /// when this process hosts the embedded broker, librdkafka's 500 ms otherwise.
    pub fetch_wait_max_ms: Option<u64>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "embedded".into(),
            group_prefix: "jivapay".into(),
            connect_timeout_secs: 10,
            instance_id: None,
            fetch_wait_max_ms: None,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistrySettings {
    /// An external Confluent-compatible Schema Registry. When set, our schemas are registered
    /// there at start-up and its ids are used; when unset, the admin API serves the registry.
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Gateway API for stores and the hosted payment page.
    pub ingest_addr: SocketAddr,
    /// Management and query API, and the Schema Registry API.
    pub admin_addr: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics` of components that serve no other HTTP (processors,
    /// sinks).
    pub ops_addr: SocketAddr,
    /// The address customers reach the payment pages at (behind a proxy, the public one).
    /// Unset: `http://<ingest_addr>`.
    pub public_url: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            ingest_addr: ([127, 0, 0, 1], 8080).into(),
            admin_addr: ([127, 0, 0, 1], 8081).into(),
            ops_addr: ([127, 0, 0, 1], 9090).into(),
            public_url: None,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for machines.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,jivapay_platform=debug`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptsSettings {
    /// Where uploaded receipts go: `file:///absolute/folder` or `s3://bucket`. Unset: the
    /// local folder `.local/receipts` under the working directory.
    pub store_url: Option<String>,
    /// S3-compatible endpoint (e.g. MinIO); unset means AWS.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// HMAC key (HS256) that signs and verifies login tokens; at least 32 bytes. Required by
    /// every component that issues or checks tokens.
    pub jwt_secret: Option<SecretString>,
    /// `iss` of issued tokens, required on every token presented.
    pub jwt_issuer: String,
    /// `aud` of issued tokens, required on every token presented.
    pub jwt_audience: String,
    /// Lifetime of a login token.
    pub jwt_ttl_secs: u64,
    /// Clock skew tolerated when checking `exp` and `nbf`.
    pub jwt_leeway_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_issuer: "jivapay".into(),
            jwt_audience: "jivapay-api".into(),
            jwt_ttl_secs: 3600,
            jwt_leeway_secs: 30,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// 32 bytes, base64: the key that encrypts requisite numbers and stores' signing secrets at
    /// rest (AES-256-GCM) and keys their lookup hashes (HMAC-SHA256).
    pub data_key: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedSettings {
    /// Login of the first admin created by `jivapay seed`.
    pub admin_login: String,
    /// Password of the first admin; `jivapay seed` refuses to create the admin without it.
    pub admin_password: Option<SecretString>,
    /// Password of every demo account created by `jivapay seed --demo`.
    pub demo_password: Option<SecretString>,
}

impl Default for SeedSettings {
    fn default() -> Self {
        Self {
            admin_login: "admin".into(),
            admin_password: None,
            demo_password: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("settings are invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// The prefix of every environment variable that is a setting.
pub const ENV_PREFIX: &str = "JIVAPAY";

impl Settings {
    /// Loads from the file (if any) and the process environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, None)
    }

    /// Like [`Settings::load`], but with `env` standing in for the process environment.
    pub fn load_from(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(env),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot; every problem is reported, not just the first.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        if let Some(url) = &self.database.url {
            let url = url.expose_secret();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                problems.push("database.url must start with postgres://".to_string());
            }
        }
        if self.database.max_connections == 0 {
            problems.push("database.max_connections must be at least 1".into());
        }
        let brokers = self.kafka.brokers.trim();
        if brokers.is_empty() {
            problems.push("kafka.brokers must be `embedded` or a host:port list".into());
        } else if brokers != "embedded" {
            for broker in brokers.split(',') {
                let valid = broker
                    .trim()
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !valid {
                    problems.push(format!("kafka.brokers entry {broker:?} is not host:port"));
                }
            }
        }
        if self.kafka.group_prefix.trim().is_empty() {
            problems.push("kafka.group_prefix must not be empty".into());
        }
        if let Some(id) = &self.kafka.instance_id {
            let valid = (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid {
                problems.push(
                    "kafka.instance_id must be 1 to 64 letters, digits, '.', '_' or '-'".into(),
                );
            }
        }
        if let Some(url) = &self.schema_registry.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push("schema_registry.url must be an http(s) URL".into());
            }
        }
        if let Some(url) = &self.receipts.store_url {
            if !(url.starts_with("file:///") || url.starts_with("s3://")) {
                problems.push("receipts.store_url must be file:///folder or s3://bucket".into());
            }
        }
        if let Some(secret) = &self.auth.jwt_secret {
            if secret.expose_secret().len() < 32 {
                problems.push("auth.jwt_secret must be at least 32 bytes".into());
            }
        }
        if self.auth.jwt_ttl_secs == 0 || self.auth.jwt_ttl_secs > 7 * 24 * 3600 {
            problems.push("auth.jwt_ttl_secs must be between 1 and 604800".into());
        }
        if let Some(key) = &self.security.data_key {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD.decode(key.expose_secret());
            if !matches!(decoded, Ok(bytes) if bytes.len() == 32) {
                problems.push("security.data_key must be 32 bytes, base64-encoded".into());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }

    /// True when the broker is the in-process mock cluster.
    pub fn embedded_broker(&self) -> bool {
        self.kafka.brokers.trim() == "embedded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::load_from(None, Some(env(&[]))).unwrap();
        assert!(s.embedded_broker());
        assert_eq!(s.http.ingest_addr.port(), 8080);
        assert!(s.database.url.is_none());
    }

    #[test]
    fn environment_overrides_defaults() {
        let s = Settings::load_from(
            None,
            Some(env(&[
                ("JIVAPAY__KAFKA__BROKERS", "127.0.0.1:19092"),
                ("JIVAPAY__DATABASE__MAX_CONNECTIONS", "3"),
                ("JIVAPAY__HTTP__ADMIN_ADDR", "0.0.0.0:1234"),
                ("JIVAPAY__LOG__FORMAT", "pretty"),
            ])),
        )
        .unwrap();
        assert_eq!(s.kafka.brokers, "127.0.0.1:19092");
        assert_eq!(s.database.max_connections, 3);
        assert_eq!(s.http.admin_addr.port(), 1234);
        assert_eq!(s.log.format, LogFormat::Pretty);
    }

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("jivapay-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jivapay.toml");
        std::fs::write(
            &file,
            "[kafka]\nbrokers = \"file-host:9092\"\ngroup_prefix = \"f\"\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            Some(env(&[("JIVAPAY__KAFKA__GROUP_PREFIX", "e")])),
        )
        .unwrap();
        assert_eq!(s.kafka.brokers, "file-host:9092");
        assert_eq!(s.kafka.group_prefix, "e");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Settings::load_from(None, Some(env(&[("JIVAPAY__KAFKA__BROKRES", "x:1")])))
            .unwrap_err();
        assert!(err.to_string().contains("brokres"), "{err}");
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let err = Settings::load_from(
            None,
            Some(env(&[
                ("JIVAPAY__KAFKA__BROKERS", "nohost"),
                ("JIVAPAY__DATABASE__URL", "mysql://x"),
                ("JIVAPAY__RECEIPTS__STORE_URL", "ftp://x"),
                ("JIVAPAY__KAFKA__INSTANCE_ID", "pod 1"),
            ])),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("kafka.brokers"), "{err}");
        assert!(err.contains("database.url"), "{err}");
        assert!(err.contains("receipts.store_url"), "{err}");
        assert!(err.contains("kafka.instance_id"), "{err}");
    }

    #[test]
    fn an_instance_id_names_a_static_group_member() {
        let settings = Settings::load_from(
            None,
            Some(env(&[("JIVAPAY__KAFKA__INSTANCE_ID", "trader-book-0")])),
        )
        .unwrap();
        assert_eq!(settings.kafka.instance_id.as_deref(), Some("trader-book-0"));
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::load_from(
            None,
            Some(env(&[
                ("JIVAPAY__DATABASE__URL", "postgres://u:hunter2@h/db"),
                ("JIVAPAY__RECEIPTS__S3_SECRET_ACCESS_KEY", "s3cr3t"),
            ])),
        )
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }
}
