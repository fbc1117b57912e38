//! Dead letters, for operators: the records a loop gave up on (undecodable, refused by a
//! constraint), newest first, filtered by component, topic, time and reason
//! (`dead_letters:read`); and their re-drive after a fix (`dead_letters:replay`): the record's
//! key and bytes are produced again to its source topic, where it goes through the normal path
//! and its idempotency (a transfer already journaled is not journaled twice). Both need a
//! global grant (`*` scope): a dead letter can belong to any merchant or trader.

use crate::audit::{self, Actor};
use crate::auth::{Authorized, Scope};
use crate::error::{ApiError, ApiResult};
use crate::need;
use crate::routes::audit_log::Params;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

need!(DeadLettersRead, "dead_letters", "read", []);
need!(DeadLettersReplay, "dead_letters", "replay", []);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dead-letters", get(list))
        .route("/dead-letters/{id}", get(show))
        .route("/dead-letters/{id}/replay", post(replay_one))
        .route("/dead-letters/replay", post(replay_range))
}

/// Most letters one list or one re-drive covers, and the list's default.
const MAX_LIMIT: i64 = 500;
const DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    component: Option<String>,
    topic: Option<String>,
    /// Letters whose reason contains this text (case-insensitive).
    reason: Option<String>,
    /// Inclusive lower bound of `failed_at` (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Exclusive upper bound of `failed_at` (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// Only letters never re-driven (`false`) or only re-driven ones (`true`).
    replayed: Option<bool>,
    /// Keyset pagination: letters with a smaller id than this (the last id of a page).
    before_id: Option<i64>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Letter {
    id: i64,
    component: String,
    source_topic: String,
    source_partition: i32,
    source_offset: i64,
    reason: String,
    /// The record's key and value as they were on the topic, base64.
    #[sqlx(skip)]
    key_base64: Option<String>,
    #[sqlx(skip)]
    payload_base64: Option<String>,
    #[serde(skip)]
    record_key: Option<Vec<u8>>,
    #[serde(skip)]
    payload: Option<Vec<u8>>,
    failed_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    replayed_at: Option<DateTime<Utc>>,
    replay_count: i32,
}

impl Letter {
    fn encoded(mut self) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.key_base64 = self.record_key.as_ref().map(|k| b64.encode(k));
        self.payload_base64 = self.payload.as_ref().map(|p| b64.encode(p));
        self
    }
}

const COLUMNS: &str = "id, component, source_topic, source_partition, source_offset, reason,
    record_key, payload, failed_at, recorded_at, replayed_at, replay_count";

fn global<N: crate::auth::Need>(auth: &Authorized<N>) -> ApiResult<()> {
    if auth.scope != Scope::All {
        return Err(ApiError::forbidden(
            "dead letters need a global grant (scope *)",
        ));
    }
    Ok(())
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<DeadLettersRead>,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Vec<Letter>>> {
    global(&auth)?;
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
    let rows: Vec<Letter> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dead_letters
         WHERE ($1::text IS NULL OR component = $1)
           AND ($2::text IS NULL OR source_topic = $2)
           AND ($3::text IS NULL OR strpos(lower(reason), lower($3)) > 0)
           AND ($4::timestamptz IS NULL OR failed_at >= $4)
           AND ($5::timestamptz IS NULL OR failed_at < $5)
           AND ($6::bool IS NULL OR (replayed_at IS NOT NULL) = $6)
           AND ($7::bigint IS NULL OR id < $7)
         ORDER BY id DESC
         LIMIT $8"
    ))
    .bind(&query.component)
    .bind(&query.topic)
    .bind(&query.reason)
    .bind(query.from)
    .bind(query.to)
    .bind(query.replayed)
    .bind(query.before_id)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows.into_iter().map(Letter::encoded).collect()))
}

async fn show(
    State(state): State<AppState>,
    auth: Authorized<DeadLettersRead>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Letter>> {
    global(&auth)?;
    let letter: Option<Letter> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1"))
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    letter
        .map(|l| Json(l.encoded()))
        .ok_or_else(|| ApiError::not_found("dead letter"))
}

#[derive(Debug, Serialize)]
struct Replayed {
    replayed: Vec<i64>,
}

async fn replay_one(
    State(state): State<AppState>,
    auth: Authorized<DeadLettersReplay>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Replayed>> {
    global(&auth)?;
    let replayed = replay(&state, &auth, id, id).await?;
    if replayed.is_empty() {
        return Err(ApiError::not_found("dead letter"));
    }
    Ok(Json(Replayed { replayed }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeBody {
    /// First and last id of the letters to re-drive, inclusive.
    from_id: i64,
    to_id: i64,
}

async fn replay_range(
    State(state): State<AppState>,
    auth: Authorized<DeadLettersReplay>,
    crate::json::Body(body): crate::json::Body<RangeBody>,
) -> ApiResult<Json<Replayed>> {
    global(&auth)?;
    if body.from_id > body.to_id {
        return Err(ApiError::invalid("from_id must not be after to_id"));
    }
    if body.to_id - body.from_id >= MAX_LIMIT {
        return Err(ApiError::invalid(format!(
            "one re-drive covers at most {MAX_LIMIT} letters"
        )));
    }
    Ok(Json(Replayed {
        replayed: replay(&state, &auth, body.from_id, body.to_id).await?,
    }))
}

/// Produces the letters `from..=to` again to their source topics (in id order, each
/// acknowledged), then notes the re-drive on them with one audit row each. A crash in between
/// only means they are re-driven again next time: their consumers deduplicate.
async fn replay(
    state: &AppState,
    auth: &Authorized<DeadLettersReplay>,
    from: i64,
    to: i64,
) -> ApiResult<Vec<i64>> {
    let producer = state.commands.as_ref().ok_or_else(|| {
        ApiError::unavailable("re-driving needs the broker, which is not configured")
    })?;
    let letters: Vec<Letter> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE id BETWEEN $1 AND $2 ORDER BY id"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(&state.pool)
    .await?;
    for letter in &letters {
        if letter.source_topic == jivapay_schemas::topics::DEAD_LETTERS {
            return Err(ApiError::invalid(format!(
                "dead letter {} is a record of the dead-letter topic itself and cannot be re-driven",
                letter.id
            )));
        }
    }
    for letter in &letters {
        producer
            .send_bytes(
                &letter.source_topic,
                letter.record_key.as_deref(),
                letter.payload.as_deref(),
            )
            .await
            .map_err(|e| {
                ApiError::unavailable(format!("the broker did not take the record: {e}"))
            })?;
    }
    let ids: Vec<i64> = letters.iter().map(|l| l.id).collect();
    let mut tx = state.pool.begin().await?;
    sqlx::query(
        "UPDATE dead_letters SET replayed_at = now(), replayed_by = $2, replay_count = replay_count + 1
         WHERE id = ANY($1)",
    )
    .bind(&ids)
    .bind(auth.caller.user_id)
    .execute(&mut *tx)
    .await?;
    for letter in &letters {
        audit::record(
            &mut tx,
            Actor::User(&auth.caller),
            audit::Entry {
                action: "dead_letter.replay",
                entity_type: "dead_letter",
                entity_id: letter.id.to_string(),
                before: None,
                after: Some(json!({
                    "component": letter.component,
                    "topic": letter.source_topic,
                    "partition": letter.source_partition,
                    "offset": letter.source_offset,
                })),
                level: audit::Level::Warning,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ids)
}
