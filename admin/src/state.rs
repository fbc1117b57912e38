//! What every handler can reach.

use crate::auth::jwt::{JwtError, JwtKeys};
use crate::routes::auth::LoginLimits;
use jivapay_core::crypto::{CryptoError, DataKey};
use jivapay_platform::order_changes::OrderChanges;
use jivapay_platform::Settings;
use jivapay_schemas::SchemaRegistry;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub schemas: SchemaRegistry,
    pub jwt: Arc<JwtKeys>,
    pub data_key: Arc<DataKey>,
    /// Produces trader commands (the trader API); absent where the API runs without a broker.
    pub commands: Option<jivapay_platform::kafka::RecordProducer>,
    /// Login attempts per client address and login.
    pub logins: Arc<LoginLimits>,
    /// Order changes for the traders' streams; fed by whoever runs the API (see
    /// [`AppState::with_changes`]).
    pub changes: Arc<OrderChanges>,
}

/// A setting the management API cannot run without.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl AppState {
    pub fn new(
        settings: &Settings,
        pool: PgPool,
        schemas: SchemaRegistry,
    ) -> Result<Self, StateError> {
        Ok(Self {
            pool,
            schemas,
            jwt: Arc::new(JwtKeys::new(&settings.auth)?),
            data_key: Arc::new(DataKey::from_settings(settings.security.data_key.as_ref())?),
            commands: None,
            logins: Arc::new(LoginLimits::default()),
            changes: Arc::default(),
        })
    }

    /// The same state, producing trader commands with `producer`.
    pub fn with_commands(mut self, producer: jivapay_platform::kafka::RecordProducer) -> Self {
        self.commands = Some(producer);
        self
    }

    /// The same state, streaming the order changes `changes` receives.
    pub fn with_changes(mut self, changes: Arc<OrderChanges>) -> Self {
        self.changes = changes;
        self
    }
}
