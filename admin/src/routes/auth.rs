//! Login per role (`POST /api/auth/{role}/login`) and the caller's own profile (`GET /api/me`).
//! A wrong login, a wrong password, a wrong role and a blocked user all get the same 401, so
//! the answer reveals nothing about which accounts exist.

use crate::auth::{password, Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::Extensions;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jivapay_platform::http::path::Path;
use jivapay_platform::http::rate_limit::{too_many, KeyedRateLimit};
use jivapay_platform::settings_catalog::CachedSetting;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/{role}/login", post(login))
        .route("/me", get(me))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    login: String,
    password: String,
}

#[derive(Serialize)]
struct LoginResponse {
    token: String,
    token_type: &'static str,
    expires_at: i64,
    role: Role,
    user_id: Uuid,
}

#[derive(sqlx::FromRow)]
struct Credentials {
    id: Uuid,
    password_hash: String,
    is_blocked: bool,
    token_version: i32,
}

/// Login attempts per client address and login (`rate_limits.logins_per_minute`): guessing
/// one account's password from one address is slowed to that pace, and nobody elsewhere can
/// lock the user out.
const LOGINS_PER_MINUTE: &str = "rate_limits.logins_per_minute";

pub struct LoginLimits {
    attempts: KeyedRateLimit<(IpAddr, String)>,
    per_minute: CachedSetting<i64>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            attempts: KeyedRateLimit::new(Duration::from_secs(60)),
            per_minute: CachedSetting::new(LOGINS_PER_MINUTE),
        }
    }
}

async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    Path(role): Path<String>,
    Body(request): Body<LoginRequest>,
) -> Response {
    // Served without the peer address (in-process tests): one address for all.
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let per_minute = state.logins.per_minute.get(&state.pool).await;
    let key = (address, request.login.to_lowercase());
    if let Err(wait) = state
        .logins
        .attempts
        .take(&key, per_minute.clamp(1, u32::MAX as i64) as u32)
    {
        return too_many(wait, "login attempts");
    }
    verify_login(&state, &role, request).await.into_response()
}

async fn verify_login(
    state: &AppState,
    role: &str,
    request: LoginRequest,
) -> ApiResult<Json<LoginResponse>> {
    let role = Role::parse(role).ok_or_else(|| ApiError::not_found("login endpoint"))?;
    let refused = || ApiError::unauthenticated("wrong login or password");
    if request.password.len() > password::MAX_LENGTH {
        return Err(refused());
    }
    let found: Option<Credentials> = sqlx::query_as(
        "SELECT id, password_hash, is_blocked, token_version FROM users
         WHERE lower(login) = lower($1) AND role = $2",
    )
    .bind(&request.login)
    .bind(role.as_str())
    .fetch_optional(&state.pool)
    .await?;
    // Hashing runs for unknown logins too, so timing does not tell which logins exist.
    let stored = found
        .as_ref()
        .map(|c| c.password_hash.clone())
        .unwrap_or_else(|| password::decoy_hash().to_owned());
    let password_ok =
        tokio::task::spawn_blocking(move || password::verify(&request.password, &stored))
            .await
            .map_err(|_| ApiError::internal())?;
    let user = match found {
        Some(user) if password_ok && !user.is_blocked => user,
        _ => return Err(refused()),
    };
    let (token, expires_at) = state
        .jwt
        .issue(user.id, role, user.token_version, super::now_secs())
        .map_err(|_| ApiError::internal())?;
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(user.id)
        .execute(&state.pool)
        .await?;
    Ok(Json(LoginResponse {
        token,
        token_type: "Bearer",
        expires_at,
        role,
        user_id: user.id,
    }))
}

#[derive(Serialize)]
struct Me {
    user_id: Uuid,
    role: Role,
    granted_permissions: Vec<String>,
    merchant_id: Option<Uuid>,
    trader_id: Option<Uuid>,
    team_ids: Vec<Uuid>,
}

async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        user_id: caller.user_id,
        role: caller.role,
        granted_permissions: caller.grants.iter().map(ToString::to_string).collect(),
        merchant_id: caller.merchant_id,
        trader_id: caller.trader_id,
        team_ids: caller.team_ids,
    })
}
