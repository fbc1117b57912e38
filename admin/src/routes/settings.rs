//! Runtime settings (`configuration_settings`): staff read them with `settings:read` and change
//! them with `settings:update`. Only the keys of the catalogue (`settings_catalog`) exist, and a
//! value is checked against the catalogue before anything is written. A change bumps the
//! version, is audited (level warning, before and after) and is published to the `settings`
//! topic in the same transaction.

use crate::audit::{self, Actor, Level};
use crate::auth::Authorized;
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::need;
use crate::settings_catalog::{self, Definition};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use jivapay_platform::http::path::Path;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use std::str::FromStr;
use uuid::Uuid;

need!(SettingsRead, "settings", "read", []);
need!(SettingsUpdate, "settings", "update", []);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(list))
        .route("/settings/{key}", get(read).put(update))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
struct SettingView {
    key: String,
    value: Value,
    value_type: String,
    description: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    updated_by: Option<Uuid>,
}

const SELECT_VIEW: &str =
    "SELECT key, value, value_type, description, version, created_at, updated_at, updated_by
    FROM configuration_settings";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSetting {
    value: Value,
    /// Optimistic concurrency: the version the caller last read (0 when there is none yet).
    version: Option<i64>,
}

fn unknown_setting(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_setting",
        format!("there is no setting {key:?}"),
    )
}

fn invalid_value(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_setting_value",
        message,
    )
}

async fn fetch(conn: &mut PgConnection, key: &str, lock: bool) -> ApiResult<Option<SettingView>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(
        sqlx::query_as(&format!("{SELECT_VIEW} WHERE key = $1{lock}"))
            .bind(key)
            .fetch_optional(conn)
            .await?,
    )
}

async fn list(
    State(state): State<AppState>,
    _auth: Authorized<SettingsRead>,
) -> ApiResult<Json<Vec<SettingView>>> {
    let rows = sqlx::query_as(&format!("{SELECT_VIEW} ORDER BY key"))
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(rows))
}

async fn read(
    State(state): State<AppState>,
    _auth: Authorized<SettingsRead>,
    Path(key): Path<String>,
) -> ApiResult<Json<SettingView>> {
    let mut conn = state.pool.acquire().await?;
    fetch(&mut conn, &key, false)
        .await?
        .map(Json)
        .ok_or_else(|| unknown_setting(&key))
}

/// Pairs of settings whose values must stay ordered: (lower key, higher key).
const ORDERED: &[(&str, &str)] = &[("fraud.review_threshold", "fraud.deny_threshold")];

/// Checks the rules between settings (a review threshold above the deny threshold would never
/// send anything to review).
async fn check_related(
    conn: &mut PgConnection,
    definition: &Definition,
    value: &Value,
) -> ApiResult<()> {
    let decimal = |v: &Value| v.as_str().and_then(|s| Decimal::from_str(s).ok());
    for (lower, higher) in ORDERED {
        let (other, this_is_lower) = if definition.key == *lower {
            (*higher, true)
        } else if definition.key == *higher {
            (*lower, false)
        } else {
            continue;
        };
        let other_value = fetch(conn, other, true).await?.map(|s| s.value);
        let (Some(this), Some(that)) = (decimal(value), other_value.as_ref().and_then(decimal))
        else {
            continue;
        };
        let ordered = if this_is_lower {
            this <= that
        } else {
            that <= this
        };
        if !ordered {
            return Err(invalid_value(format!(
                "{lower} must not exceed {higher} (now {that} for {other})"
            )));
        }
    }
    Ok(())
}

async fn update(
    State(state): State<AppState>,
    auth: Authorized<SettingsUpdate>,
    Path(key): Path<String>,
    Body(request): Body<UpdateSetting>,
) -> ApiResult<Json<SettingView>> {
    let definition = settings_catalog::definition(&key).ok_or_else(|| unknown_setting(&key))?;
    let value = settings_catalog::validate(definition, &request.value).map_err(invalid_value)?;
    let value_type = definition.kind.value_type();
    let mut tx = state.pool.begin().await?;
    let before = fetch(&mut tx, definition.key, true).await?;
    if let Some(expected) = request.version {
        let current = before.as_ref().map_or(0, |s| s.version);
        if expected != current {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "version_conflict",
                format!("{key} is at version {current}, not {expected}; read it again and retry"),
            ));
        }
    }
    check_related(&mut tx, definition, &value).await?;
    let after: SettingView = sqlx::query_as(
        "INSERT INTO configuration_settings AS s (key, value, value_type, description, updated_by)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, value_type = EXCLUDED.value_type,
             version = s.version + 1, updated_by = EXCLUDED.updated_by
         RETURNING key, value, value_type, description, version, created_at, updated_at, updated_by",
    )
    .bind(definition.key)
    .bind(&value)
    .bind(value_type)
    .bind(definition.description)
    .bind(auth.caller.user_id)
    .fetch_one(&mut *tx)
    .await?;
    let image = |s: &SettingView| json!({ "value": s.value, "version": s.version });
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "setting.update",
            entity_type: "setting",
            entity_id: definition.key.to_owned(),
            before: before.as_ref().map(image),
            after: Some(image(&after)),
            level: Level::Warning,
        },
    )
    .await?;
    crate::seed::publish_setting(&mut tx, &state, definition.key, value_type, &value).await?;
    tx.commit().await?;
    Ok(Json(after))
}
