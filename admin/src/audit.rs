//! The audit log: every mutation writes one row (actor, action, entity, before/after, level) in
//! the transaction that makes the change, so there is no change without its audit row.

use crate::auth::Caller;
use serde::Serialize;
use sqlx::PgConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

/// Who acted: a person, or the system (seeders, background jobs).
pub enum Actor<'a> {
    User(&'a Caller),
    System,
}

pub struct Entry<'a> {
    /// `<entity>.<verb>`, e.g. `requisite.approve`.
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub level: Level,
}

pub async fn record(tx: &mut PgConnection, actor: Actor<'_>, entry: Entry<'_>) -> sqlx::Result<()> {
    let (user_id, role) = match actor {
        Actor::User(caller) => (Some(caller.user_id), caller.role.as_str()),
        Actor::System => (None, "system"),
    };
    sqlx::query(
        "INSERT INTO audit_log (actor_user_id, actor_role, action, entity_type, entity_id, before, after, level)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(user_id)
    .bind(role)
    .bind(entry.action)
    .bind(entry.entity_type)
    .bind(entry.entity_id)
    .bind(entry.before)
    .bind(entry.after)
    .bind(entry.level.as_str())
    .execute(tx)
    .await
    .map(drop)
}
