//! The audit log, for staff holding `audit:read`: every mutation's row (actor, action, entity,
//! before/after, level), newest first, filtered by level, actor, entity and time. The scope of
//! the grant limits the rows: `own` = the caller's own actions, `team` = also those of the
//! traders in the teams the caller leads, `*` = everything.

use crate::audit::Level;
use crate::auth::Authorized;
use crate::error::{ApiError, ApiResult};
use crate::need;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

need!(AuditRead, "audit", "read", []);

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

/// Like `axum::extract::Query`, but an unknown parameter or a malformed value becomes a 400
/// `invalid_query` API error (use with `#[serde(deny_unknown_fields)]` structs).
pub(crate) struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) =
            Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        rejection.body_text(),
                    )
                })?;
        Ok(Params(value))
    }
}

/// Most rows one query returns, and the default.
const MAX_LIMIT: i64 = 500;
const DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Exactly this level.
    level: Option<Level>,
    /// This level or a more severe one.
    min_level: Option<Level>,
    actor_user_id: Option<Uuid>,
    action: Option<String>,
    entity_type: Option<String>,
    entity_id: Option<String>,
    /// Inclusive lower bound of `created_at` (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Exclusive upper bound of `created_at` (RFC 3339).
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
}

const LEVELS: [Level; 4] = [Level::Debug, Level::Info, Level::Warning, Level::Critical];

/// The levels a query accepts, as text for `level = ANY(...)`.
fn levels(query: &AuditQuery) -> Vec<&'static str> {
    let rank = |level: Level| LEVELS.iter().position(|l| *l == level).unwrap_or(0);
    LEVELS
        .iter()
        .filter(|l| query.level.is_none_or(|wanted| **l == wanted))
        .filter(|l| query.min_level.is_none_or(|min| rank(**l) >= rank(min)))
        .map(Level::as_str)
        .collect()
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct AuditEntry {
    id: Uuid,
    actor_user_id: Option<Uuid>,
    actor_role: String,
    action: String,
    entity_type: String,
    entity_id: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    level: String,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    created_at: DateTime<Utc>,
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<AuditRead>,
    Params(query): Params<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from > to {
            return Err(ApiError::invalid("from must not be after to"));
        }
    }
    let visibility = auth.visibility();
    let rows: Vec<AuditEntry> = sqlx::query_as(
        "SELECT a.id, a.actor_user_id, a.actor_role, a.action, a.entity_type, a.entity_id, a.before,
                a.after, a.level, host(a.ip) AS ip, a.user_agent, a.request_id, a.created_at
         FROM audit_log a
         WHERE ($1 OR a.actor_user_id = $2
                OR a.actor_user_id IN (SELECT t.user_id FROM traders t WHERE t.team_id = ANY($3)))
           AND a.level = ANY($4)
           AND ($5::uuid IS NULL OR a.actor_user_id = $5)
           AND ($6::text IS NULL OR a.action = $6)
           AND ($7::text IS NULL OR a.entity_type = $7)
           AND ($8::text IS NULL OR a.entity_id = $8)
           AND ($9::timestamptz IS NULL OR a.created_at >= $9)
           AND ($10::timestamptz IS NULL OR a.created_at < $10)
         ORDER BY a.created_at DESC, a.id DESC
         LIMIT $11",
    )
    .bind(visibility.all)
    .bind(auth.caller.user_id)
    .bind(&visibility.team_ids)
    .bind(levels(&query))
    .bind(query.actor_user_id)
    .bind(&query.action)
    .bind(&query.entity_type)
    .bind(&query.entity_id)
    .bind(query.from)
    .bind(query.to)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(level: Option<Level>, min_level: Option<Level>) -> AuditQuery {
        AuditQuery {
            level,
            min_level,
            actor_user_id: None,
            action: None,
            entity_type: None,
            entity_id: None,
            from: None,
            to: None,
            limit: None,
        }
    }

    #[test]
    fn level_filters_combine() {
        assert_eq!(levels(&query(None, None)).len(), 4);
        assert_eq!(
            levels(&query(None, Some(Level::Warning))),
            ["warning", "critical"]
        );
        assert_eq!(levels(&query(Some(Level::Info), None)), ["info"]);
        assert!(levels(&query(Some(Level::Info), Some(Level::Warning))).is_empty());
    }
}
