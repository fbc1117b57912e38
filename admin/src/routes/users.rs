//! Users and staff profiles: staff create logins of every role (admin, support and team lead get
//! a staff profile with `granted_permissions`), read them within their scope, block and unblock
//! them, and change staff permissions.
//!
//! Rules beyond the route permission:
//! - nobody grants what he does not hold himself: every grant given (at creation or later) must
//!   be covered by one of the caller's own grants, at the same or a wider scope;
//! - nobody manages someone more powerful: blocking a staff user or changing his permissions
//!   needs the caller's grants to cover all of the target's current grants;
//! - nobody blocks himself or changes his own permissions (409 `cannot_modify_self`).
//!
//! Blocking bumps `token_version`, so every token issued before stops working at once. Scopes:
//! `*` every user, `team` the caller himself and the traders of the teams he leads, `own` the
//! caller himself.

use crate::audit::{self, Actor, Level};
use crate::auth::permissions::{parse_grants, Grant, Segment};
use crate::auth::{password, Authorized, Caller, Role, Scope};
use crate::error::{ApiError, ApiResult};
use crate::json::{present, Body};
use crate::need;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use jivapay_core::validate;
use jivapay_platform::http::path::Path;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

need!(UsersCreate, "users", "create", []);
need!(UsersRead, "users", "read", []);
need!(UsersUpdate, "users", "update", []);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", post(create).get(list))
        .route("/users/{id}", get(read))
        .route("/users/{id}/block", post(block))
        .route("/users/{id}/unblock", post(unblock))
        .route("/users/{id}/permissions", put(set_permissions))
}

/// Most grants one staff profile may carry.
const MAX_GRANTS: usize = 100;
/// Default and largest page of a list.
pub(super) const DEFAULT_LIMIT: i64 = 100;
pub(super) const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    login: String,
    password: String,
    role: String,
    display_name: Option<String>,
    email: Option<String>,
    granted_permissions: Option<Vec<String>>,
    role_description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockRequest {
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPermissions {
    granted_permissions: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    role_description: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    role: Option<String>,
    limit: Option<i64>,
}

/// A user as the API shows it: never the password hash or the token version.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct UserView {
    id: Uuid,
    login: String,
    role: String,
    display_name: Option<String>,
    email: Option<String>,
    is_blocked: bool,
    blocked_at: Option<chrono::DateTime<chrono::Utc>>,
    blocked_reason: Option<String>,
    /// Staff only; `null` for traders and merchants.
    granted_permissions: Option<Vec<String>>,
    role_description: Option<String>,
    merchant_id: Option<Uuid>,
    trader_id: Option<Uuid>,
    last_login_at: Option<chrono::DateTime<chrono::Utc>>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// `$1` all, `$2` the caller himself, `$3` the teams whose traders he may reach.
const SELECT_VIEW: &str =
    "SELECT u.id, u.login, u.role, u.display_name, u.email, u.is_blocked, u.blocked_at,
        u.blocked_reason, s.granted_permissions, s.role_description, m.id AS merchant_id,
        t.id AS trader_id, u.last_login_at, u.created_at, u.updated_at
    FROM users u
    LEFT JOIN staff_profiles s ON s.user_id = u.id
    LEFT JOIN merchants m ON m.user_id = u.id
    LEFT JOIN traders t ON t.user_id = u.id
    WHERE ($1 OR u.id = $2 OR t.team_id = ANY($3))";

async fn fetch_visible(
    conn: &mut PgConnection,
    auth_all: bool,
    caller: &Caller,
    team_ids: &[Uuid],
    id: Uuid,
) -> ApiResult<UserView> {
    sqlx::query_as(&format!("{SELECT_VIEW} AND u.id = $4"))
        .bind(auth_all)
        .bind(caller.user_id)
        .bind(team_ids)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

/// The visible user `id`, read for a change (its row locked until the transaction ends).
async fn fetch_for_update<N: crate::auth::Need>(
    conn: &mut PgConnection,
    auth: &Authorized<N>,
    id: Uuid,
) -> ApiResult<UserView> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let visibility = auth.visibility();
    fetch_visible(conn, visibility.all, &auth.caller, &visibility.team_ids, id).await
}

fn to_json(view: &UserView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

/// A list query that does not parse is a client error with a stable code, like a bad body.
pub(super) fn query_rejected(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
        format!(
            "the query string is not acceptable: {}",
            rejection.body_text()
        ),
    )
}

/// The page size of a list: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub(super) fn limit(value: Option<i64>) -> ApiResult<i64> {
    Ok(validate::int_range("limit", value.unwrap_or(DEFAULT_LIMIT), 1, MAX_LIMIT)?.into())
}

/// An e-mail address as the database accepts it (`x@y`, no whitespace), at most 254 characters.
pub(super) fn email(field: &str, value: &str) -> ApiResult<String> {
    let value = value.trim();
    let ok = value.chars().count() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !ok {
        return Err(ApiError::invalid(format!(
            "{field} must be an e-mail address"
        )));
    }
    Ok(value.to_owned())
}

/// A login: 3 to 64 letters, digits and `.`, `_`, `-`, `@`.
fn login(value: &str) -> ApiResult<String> {
    let ok = (3..=64).contains(&value.chars().count())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !ok {
        return Err(ApiError::invalid(
            "login must be 3 to 64 characters: letters, digits, `.`, `_`, `-` or `@`",
        ));
    }
    Ok(value.to_owned())
}

fn check_password(value: &str) -> ApiResult<()> {
    // The maximum is in bytes, as the login endpoint checks it: a longer one could never log in.
    if value.chars().count() < password::MIN_LENGTH || value.len() > password::MAX_LENGTH {
        return Err(ApiError::invalid(format!(
            "password must be {} to {} characters",
            password::MIN_LENGTH,
            password::MAX_LENGTH
        )));
    }
    Ok(())
}

fn not_staff(role: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_staff",
        format!("a {role} has no staff profile: permissions and a role description are for admin, support and team lead"),
    )
}

fn cannot_modify_self() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "cannot_modify_self",
        "nobody may block himself or change his own permissions",
    )
}

fn exceeds_caller() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "exceeds_caller_permissions",
        "only permissions the caller holds himself can be granted, and only users no more powerful than the caller can be managed",
    )
}

/// Validates a grant list (canonical, de-duplicated in order) with the one grammar.
fn grants(list: &[String]) -> ApiResult<Vec<Grant>> {
    if list.len() > MAX_GRANTS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_permission",
            format!("at most {MAX_GRANTS} permissions"),
        ));
    }
    let parsed = parse_grants(list).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_permission",
            e.to_string(),
        )
    })?;
    let mut unique: Vec<Grant> = Vec::with_capacity(parsed.len());
    for grant in parsed {
        if !unique.contains(&grant) {
            unique.push(grant);
        }
    }
    Ok(unique)
}

fn segment_covers(held: &Segment, wanted: &Segment) -> bool {
    match (held, wanted) {
        (Segment::Any, _) => true,
        (Segment::Name(held), Segment::Name(wanted)) => held == wanted,
        (Segment::Name(_), Segment::Any) => false,
    }
}

/// Whether one of `held` gives at least everything `wanted` gives.
fn holds(held: &[Grant], wanted: &Grant) -> bool {
    held.iter().any(|h| {
        segment_covers(h.resource(), wanted.resource())
            && segment_covers(h.action(), wanted.action())
            && h.scope() >= wanted.scope()
    })
}

/// The grants of a stored list that parse (one that does not grants nothing, see permissions).
fn stored_grants(list: &[String]) -> Vec<Grant> {
    list.iter().filter_map(|g| g.parse().ok()).collect()
}

/// Refuses unless the caller holds every one of `wanted`.
fn within_caller(caller: &Caller, wanted: &[Grant]) -> ApiResult<()> {
    if wanted.iter().all(|g| holds(&caller.grants, g)) {
        Ok(())
    } else {
        Err(exceeds_caller())
    }
}

async fn create(
    State(state): State<AppState>,
    auth: Authorized<UsersCreate>,
    Body(request): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    if auth.scope != Scope::All {
        return Err(ApiError::forbidden(
            "creating users needs the permission users:create with scope *",
        ));
    }
    let login = login(&request.login)?;
    check_password(&request.password)?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        ApiError::invalid("role must be admin, support, team_lead, trader or merchant")
    })?;
    let display_name = request
        .display_name
        .as_deref()
        .map(|n| validate::text("display_name", n, 128))
        .transpose()?;
    let email = request
        .email
        .as_deref()
        .map(|e| email("email", e))
        .transpose()?;
    let role_description = request
        .role_description
        .as_deref()
        .map(|d| validate::text("role_description", d, 500))
        .transpose()?;
    let granted = match &request.granted_permissions {
        Some(list) => grants(list)?,
        None => vec![],
    };
    if !role.is_staff() && (request.granted_permissions.is_some() || role_description.is_some()) {
        return Err(not_staff(role.as_str()));
    }
    within_caller(&auth.caller, &granted)?;
    let plain = request.password;
    let hash = tokio::task::spawn_blocking(move || password::hash(&plain))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|_| ApiError::internal())?;

    let mut tx = state.pool.begin().await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (login, password_hash, role, display_name, email) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(&login)
    .bind(hash)
    .bind(role.as_str())
    .bind(display_name)
    .bind(email)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        let taken = e
            .as_database_error()
            .is_some_and(|d| d.constraint() == Some("users_login_key"));
        if taken {
            ApiError::new(StatusCode::CONFLICT, "login_taken", "this login is taken")
        } else {
            e.into()
        }
    })?;
    if role.is_staff() {
        sqlx::query(
            "INSERT INTO staff_profiles (user_id, user_role, granted_permissions, role_description, updated_by)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(role.as_str())
        .bind(granted.iter().map(ToString::to_string).collect::<Vec<_>>())
        .bind(&role_description)
        .bind(auth.caller.user_id)
        .execute(&mut *tx)
        .await?;
    }
    let visibility = auth.visibility();
    let created = fetch_visible(&mut tx, visibility.all, &auth.caller, &[], id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "user.create",
            entity_type: "user",
            entity_id: id.to_string(),
            before: None,
            after: Some(to_json(&created)),
            // Granting permissions is a permission change, whichever route does it.
            level: if granted.is_empty() {
                Level::Info
            } else {
                Level::Critical
            },
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<UsersRead>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<UserView>>> {
    let Query(query) = query.map_err(query_rejected)?;
    let limit = limit(query.limit)?;
    if let Some(role) = &query.role {
        if Role::parse(role).is_none() {
            return Err(ApiError::invalid(
                "role must be admin, support, team_lead, trader or merchant",
            ));
        }
    }
    let visibility = auth.visibility();
    let users = sqlx::query_as(&format!(
        "{SELECT_VIEW} AND ($4::text IS NULL OR u.role = $4) ORDER BY u.created_at, u.id LIMIT $5"
    ))
    .bind(visibility.all)
    .bind(auth.caller.user_id)
    .bind(&visibility.team_ids)
    .bind(query.role)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(users))
}

async fn read(
    State(state): State<AppState>,
    auth: Authorized<UsersRead>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<UserView>> {
    let visibility = auth.visibility();
    let mut conn = state.pool.acquire().await?;
    fetch_visible(
        &mut conn,
        visibility.all,
        &auth.caller,
        &visibility.team_ids,
        id,
    )
    .await
    .map(Json)
}

/// Refuses to act on the caller himself or on a staff user more powerful than the caller.
fn may_manage(caller: &Caller, target: &UserView) -> ApiResult<()> {
    if target.id == caller.user_id {
        return Err(cannot_modify_self());
    }
    let current = stored_grants(target.granted_permissions.as_deref().unwrap_or_default());
    within_caller(caller, &current)
}

async fn block(
    State(state): State<AppState>,
    auth: Authorized<UsersUpdate>,
    Path(id): Path<Uuid>,
    Body(request): Body<BlockRequest>,
) -> ApiResult<Json<UserView>> {
    let reason = validate::text("reason", &request.reason, 500)?;
    let mut tx = state.pool.begin().await?;
    let before = fetch_for_update(&mut tx, &auth, id).await?;
    may_manage(&auth.caller, &before)?;
    if before.is_blocked {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_blocked",
            "the user is already blocked",
        ));
    }
    // The new token version revokes every token issued before, at the next request.
    sqlx::query(
        "UPDATE users SET is_blocked = true, blocked_at = now(), blocked_reason = $2,
            token_version = token_version + 1
         WHERE id = $1",
    )
    .bind(id)
    .bind(&reason)
    .execute(&mut *tx)
    .await?;
    let after = fetch_for_update(&mut tx, &auth, id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "user.block",
            entity_type: "user",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: Level::Critical,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn unblock(
    State(state): State<AppState>,
    auth: Authorized<UsersUpdate>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<UserView>> {
    let mut tx = state.pool.begin().await?;
    let before = fetch_for_update(&mut tx, &auth, id).await?;
    may_manage(&auth.caller, &before)?;
    if !before.is_blocked {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_blocked",
            "the user is not blocked",
        ));
    }
    sqlx::query(
        "UPDATE users SET is_blocked = false, blocked_at = NULL, blocked_reason = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let after = fetch_for_update(&mut tx, &auth, id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "user.unblock",
            entity_type: "user",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: Level::Critical,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn set_permissions(
    State(state): State<AppState>,
    auth: Authorized<UsersUpdate>,
    Path(id): Path<Uuid>,
    Body(request): Body<SetPermissions>,
) -> ApiResult<Json<UserView>> {
    let granted = grants(&request.granted_permissions)?;
    let role_description = match &request.role_description {
        Some(Some(d)) => Some(Some(validate::text("role_description", d, 500)?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut tx = state.pool.begin().await?;
    let before = fetch_for_update(&mut tx, &auth, id).await?;
    if before.granted_permissions.is_none() {
        return Err(not_staff(&before.role));
    }
    may_manage(&auth.caller, &before)?;
    within_caller(&auth.caller, &granted)?;
    sqlx::query(
        "UPDATE staff_profiles SET granted_permissions = $2,
            role_description = CASE WHEN $3 THEN $4 ELSE role_description END, updated_by = $5
         WHERE user_id = $1",
    )
    .bind(id)
    .bind(granted.iter().map(ToString::to_string).collect::<Vec<_>>())
    .bind(role_description.is_some())
    .bind(role_description.flatten())
    .bind(auth.caller.user_id)
    .execute(&mut *tx)
    .await?;
    let after = fetch_for_update(&mut tx, &auth, id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "user.permissions",
            entity_type: "user",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: Level::Critical,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(list: &[&str]) -> Vec<Grant> {
        list.iter().map(|g| g.parse().unwrap()).collect()
    }

    #[test]
    fn a_grant_is_held_only_through_an_equal_or_wider_one() {
        let held = parsed(&["orders:read:team", "traders:*:*"]);
        for (wanted, expected) in [
            ("orders:read:team", true),
            ("orders:read:own", true),
            ("orders:read:*", false),
            ("orders:*:own", false),
            ("*:read:own", false),
            ("traders:update:*", true),
            ("traders:*:team", true),
            ("trader:update:own", false),
        ] {
            assert_eq!(holds(&held, &wanted.parse().unwrap()), expected, "{wanted}");
        }
        assert!(holds(&parsed(&["*:*:*"]), &"*:*:*".parse().unwrap()));
        assert!(!holds(&[], &"orders:read:own".parse().unwrap()));
    }

    #[test]
    fn grant_lists_are_validated_and_deduplicated() {
        let list: Vec<String> = ["orders:read:*", "orders:read:*", "traders:read:own"]
            .map(String::from)
            .to_vec();
        assert_eq!(grants(&list).unwrap().len(), 2);
        let bad = grants(&["orders:read".to_owned()]).unwrap_err();
        assert_eq!(bad.code, "invalid_permission");
        assert!(grants(&vec!["a:b:own".to_owned(); MAX_GRANTS + 1]).is_err());
    }

    #[test]
    fn logins_passwords_and_emails() {
        assert!(login("alice.ops").is_ok());
        assert!(login("al").is_err());
        assert!(login(" alice").is_err());
        assert!(login("al ice").is_err());
        assert!(check_password("123456789").is_err());
        assert!(check_password("1234567890").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
        // 100 two-byte characters are 200 bytes: longer than the login endpoint accepts.
        assert!(check_password(&"я".repeat(100)).is_err());
        assert!(email("e", "ops@example.com").is_ok());
        assert!(email("e", "ops@").is_err());
        assert!(email("e", "a b@example.com").is_err());
        assert!(email("e", "a@b@c").is_err());
    }
}
