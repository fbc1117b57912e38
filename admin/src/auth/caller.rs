//! The caller of a request, and route permissions as extractors.
//!
//! `Caller` checks the bearer token and then the user's current state in PostgreSQL (a blocked
//! user or a bumped token version is refused at once, not when the token expires).
//! `Authorized<N>` adds the permission a route declares through its marker type `N`: staff get
//! the widest scope their `granted_permissions` allow; traders and merchants get `Own` on the
//! routes that list their role as self-service, and 403 elsewhere. Handlers then filter their
//! SQL by that scope (see `Visibility`), so another tenant's object is simply not found.

use super::permissions::{allowed_scope, parse_grants, Grant, Permission, Scope};
use super::Role;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::marker::PhantomData;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
    pub grants: Vec<Grant>,
    /// The caller's merchant, for merchants.
    pub merchant_id: Option<Uuid>,
    /// The caller's trader, for traders.
    pub trader_id: Option<Uuid>,
    /// Teams the caller leads, for team leads.
    pub team_ids: Vec<Uuid>,
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[derive(sqlx::FromRow)]
struct UserRow {
    role: String,
    is_blocked: bool,
    token_version: i32,
    granted_permissions: Option<Vec<String>>,
    merchant_id: Option<Uuid>,
    trader_id: Option<Uuid>,
    team_ids: Vec<Uuid>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token =
            bearer(parts).ok_or_else(|| ApiError::unauthenticated("a bearer token is required"))?;
        let claims = state
            .jwt
            .verify(token)
            .map_err(|_| ApiError::unauthenticated("the token is invalid or expired"))?;
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.role, u.is_blocked, u.token_version, s.granted_permissions,
                    m.id AS merchant_id, t.id AS trader_id,
                    coalesce(array(SELECT id FROM teams WHERE team_lead_user_id = u.id), '{}') AS team_ids
             FROM users u
             LEFT JOIN staff_profiles s ON s.user_id = u.id
             LEFT JOIN merchants m ON m.user_id = u.id
             LEFT JOIN traders t ON t.user_id = u.id
             WHERE u.id = $1",
        )
        .bind(claims.sub)
        .fetch_optional(&state.pool)
        .await?;
        let row =
            row.ok_or_else(|| ApiError::unauthenticated("the token is invalid or expired"))?;
        let valid = !row.is_blocked
            && row.token_version == claims.ver
            && Role::parse(&row.role) == Some(claims.role);
        if !valid {
            return Err(ApiError::unauthenticated("the token is no longer valid"));
        }
        // Grants were validated when written; one that no longer parses grants nothing.
        let grants = parse_grants(&row.granted_permissions.unwrap_or_default()).unwrap_or_default();
        Ok(Caller {
            user_id: claims.sub,
            role: claims.role,
            grants,
            merchant_id: row.merchant_id,
            trader_id: row.trader_id,
            team_ids: row.team_ids,
        })
    }
}

/// A route's permission: implemented by marker types declared with [`crate::need!`].
pub trait Need: Send + Sync + 'static {
    const PERMISSION: Permission;
    /// Non-staff roles that may use the route on their own data (scope `Own`).
    const SELF_SERVICE: &'static [Role];
}

/// Declares a route permission marker: `need!(TradersRead, "traders", "read", [Trader]);`.
#[macro_export]
macro_rules! need {
    ($name:ident, $resource:literal, $action:literal, [$($role:ident),*]) => {
        pub struct $name;
        impl $crate::auth::Need for $name {
            const PERMISSION: $crate::auth::Permission = $crate::auth::Permission::new($resource, $action);
            const SELF_SERVICE: &'static [$crate::auth::Role] = &[$($crate::auth::Role::$role),*];
        }
    };
}

/// A caller allowed to use the route, with the scope the allowance covers.
pub struct Authorized<N: Need> {
    pub caller: Caller,
    pub scope: Scope,
    _need: PhantomData<N>,
}

impl<N: Need> Authorized<N> {
    /// What rows this caller may see or touch, for SQL filters.
    pub fn visibility(&self) -> Visibility {
        Visibility::of(&self.caller, self.scope)
    }
}

impl<N: Need> FromRequestParts<AppState> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let scope = if caller.role.is_staff() {
            allowed_scope(&caller.grants, N::PERMISSION)
        } else {
            N::SELF_SERVICE.contains(&caller.role).then_some(Scope::Own)
        };
        let scope = scope.ok_or_else(|| {
            ApiError::forbidden(format!(
                "this needs the permission {}:{}",
                N::PERMISSION.resource,
                N::PERMISSION.action
            ))
        })?;
        Ok(Self {
            caller,
            scope,
            _need: PhantomData,
        })
    }
}

/// The rows a caller may reach, as values to bind into SQL predicates of the form
/// `($1 OR team_id = ANY($2) OR trader_id = $3 OR merchant_id = $4)`.
#[derive(Debug, Clone)]
pub struct Visibility {
    /// Everything (scope `*`).
    pub all: bool,
    /// Teams whose traders are visible (scope `team` of a team lead).
    pub team_ids: Vec<Uuid>,
    /// The caller's own trader (scope `own` of a trader).
    pub trader_id: Option<Uuid>,
    /// The caller's own merchant (scope `own` of a merchant).
    pub merchant_id: Option<Uuid>,
}

impl Visibility {
    pub fn of(caller: &Caller, scope: Scope) -> Self {
        Self {
            all: scope == Scope::All,
            team_ids: if scope >= Scope::Team {
                caller.team_ids.clone()
            } else {
                vec![]
            },
            trader_id: caller.trader_id,
            merchant_id: caller.merchant_id,
        }
    }
}
