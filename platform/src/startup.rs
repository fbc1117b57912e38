//! Start-up failures that an operator can act on: each says what is missing and how to start
//! it, and `main` prints it as one line and exits non-zero (never a panic trace).

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(
        "PostgreSQL is not configured: set JIVAPAY__DATABASE__URL (for the local cluster run \
         `scripts/stack start postgres` and `eval \"$(scripts/stack env)\"`)"
    )]
    DatabaseNotConfigured,
    #[error(
        "PostgreSQL at {target} is not reachable ({reason}): start it with \
         `scripts/stack start postgres` or point JIVAPAY__DATABASE__URL at a running server"
    )]
    DatabaseUnreachable { target: String, reason: String },
    #[error("PostgreSQL migrations failed: {0}")]
    Migrations(String),
    #[error(
        "Kafka broker at {brokers} is not reachable ({reason}): start it with \
         `scripts/stack start tansu`, or set JIVAPAY__KAFKA__BROKERS=embedded to host one in \
         this process"
    )]
    BrokerUnreachable { brokers: String, reason: String },
    #[error(
        "the embedded broker runs only inside `jivapay all` and tests: set \
         JIVAPAY__KAFKA__BROKERS to host:port of a running broker for `jivapay {component}`"
    )]
    EmbeddedBrokerNotHere { component: String },
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error("topic {topic} has {actual} partitions, the catalogue says {expected}")]
    PartitionMismatch {
        topic: String,
        expected: i32,
        actual: i32,
    },
    #[error("Schema Registry at {url}: {reason}")]
    SchemaRegistry { url: String, reason: String },
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
}
