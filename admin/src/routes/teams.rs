//! Teams: staff create teams and name their lead (a user with role `team_lead`); a team lead
//! with scope `team` sees and edits only the teams he leads. Every change is audited. A team's
//! own fields are not part of any published record (the `traders` topic carries only a trader's
//! `team_id`), so team changes enqueue nothing to the outbox.

use crate::audit::{self, Actor, Level};
use crate::auth::{Authorized, Scope, Visibility};
use crate::error::{ApiError, ApiResult};
use crate::json::{present, Body};
use crate::need;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use jivapay_core::validate;
use jivapay_platform::http::path::Path;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

need!(TeamsCreate, "teams", "create", []);
need!(TeamsRead, "teams", "read", []);
need!(TeamsUpdate, "teams", "update", []);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/teams", post(create).get(list))
        .route("/teams/{id}", get(read).patch(update))
}

/// Longest team name, in characters.
const NAME_MAX_CHARS: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTeam {
    name: String,
    team_lead_user_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateTeam {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    team_lead_user_id: Option<Option<Uuid>>,
    is_active: Option<bool>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct TeamView {
    id: Uuid,
    name: String,
    team_lead_user_id: Option<Uuid>,
    team_lead_login: Option<String>,
    is_active: bool,
    /// Traders currently in the team.
    trader_count: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

const SELECT_VIEW: &str =
    "SELECT t.id, t.name, t.team_lead_user_id, u.login AS team_lead_login, t.is_active,
        (SELECT count(*) FROM traders tr WHERE tr.team_id = t.id) AS trader_count,
        t.created_at, t.updated_at
    FROM teams t
    LEFT JOIN users u ON u.id = t.team_lead_user_id
    WHERE ($1 OR t.id = ANY($2))";

async fn fetch_visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    id: Uuid,
) -> ApiResult<TeamView> {
    sqlx::query_as(&format!("{SELECT_VIEW} AND t.id = $3"))
        .bind(visibility.all)
        .bind(&visibility.team_ids)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found("team"))
}

fn to_json(view: &TeamView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

/// A named lead must be an existing user with role `team_lead`.
async fn check_team_lead(conn: &mut PgConnection, user_id: Uuid) -> ApiResult<()> {
    let is_lead: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND role = 'team_lead')",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    if is_lead {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_team_lead",
            "team_lead_user_id must be a user with role team_lead",
        ))
    }
}

/// Team names are unique.
fn duplicate_name(e: sqlx::Error) -> ApiError {
    let is_duplicate = e
        .as_database_error()
        .is_some_and(|d| d.constraint() == Some("teams_name_key"));
    if is_duplicate {
        ApiError::new(
            StatusCode::CONFLICT,
            "team_exists",
            "a team with this name already exists",
        )
    } else {
        e.into()
    }
}

async fn create(
    State(state): State<AppState>,
    auth: Authorized<TeamsCreate>,
    Body(request): Body<CreateTeam>,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    // A team that does not exist yet is in nobody's team: creating one needs scope `*`.
    if auth.scope < Scope::All {
        return Err(ApiError::forbidden(
            "creating a team needs the permission teams:create with scope *",
        ));
    }
    let name = validate::text("name", &request.name, NAME_MAX_CHARS)?;
    let mut tx = state.pool.begin().await?;
    if let Some(lead) = request.team_lead_user_id {
        check_team_lead(&mut tx, lead).await?;
    }
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO teams (name, team_lead_user_id) VALUES ($1, $2) RETURNING id",
    )
    .bind(&name)
    .bind(request.team_lead_user_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(duplicate_name)?;
    let created = fetch_visible(&mut tx, &auth.visibility(), id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "team.create",
            entity_type: "team",
            entity_id: id.to_string(),
            before: None,
            after: Some(to_json(&created)),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<TeamsRead>,
) -> ApiResult<Json<Vec<TeamView>>> {
    let visibility = auth.visibility();
    let teams = sqlx::query_as(&format!("{SELECT_VIEW} ORDER BY t.name, t.id LIMIT 1000"))
        .bind(visibility.all)
        .bind(&visibility.team_ids)
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(teams))
}

async fn read(
    State(state): State<AppState>,
    auth: Authorized<TeamsRead>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TeamView>> {
    let mut conn = state.pool.acquire().await?;
    fetch_visible(&mut conn, &auth.visibility(), id)
        .await
        .map(Json)
}

async fn update(
    State(state): State<AppState>,
    auth: Authorized<TeamsUpdate>,
    Path(id): Path<Uuid>,
    Body(request): Body<UpdateTeam>,
) -> ApiResult<Json<TeamView>> {
    let name = request
        .name
        .as_deref()
        .map(|n| validate::text("name", n, NAME_MAX_CHARS))
        .transpose()?;
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    sqlx::query("SELECT 1 FROM teams WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let before = fetch_visible(&mut tx, &visibility, id).await?;
    let lead = match request.team_lead_user_id {
        Some(lead) if lead != before.team_lead_user_id => {
            // A lead with scope `team` must not hand his team to someone else (nor take it
            // from himself): naming leads is for staff with scope `*`.
            if auth.scope < Scope::All {
                return Err(ApiError::forbidden(
                    "changing a team's lead needs the permission teams:update with scope *",
                ));
            }
            if let Some(user) = lead {
                check_team_lead(&mut tx, user).await?;
            }
            lead
        }
        _ => before.team_lead_user_id,
    };
    sqlx::query("UPDATE teams SET name = $2, team_lead_user_id = $3, is_active = $4 WHERE id = $1")
        .bind(id)
        .bind(name.as_deref().unwrap_or(&before.name))
        .bind(lead)
        .bind(request.is_active.unwrap_or(before.is_active))
        .execute(&mut *tx)
        .await
        .map_err(duplicate_name)?;
    // Only scope `*` may change the lead, so the team is still visible to the caller.
    let after = fetch_visible(&mut tx, &visibility, id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "team.update",
            entity_type: "team",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}
