//! Merchants: staff create a merchant for an existing login of role `merchant` and edit it; a
//! merchant reads only his own (self-service, scope `own`). Every change is audited. A merchant
//! is not a published record itself, but enabling or disabling one republishes its stores, so
//! that the `stores` topic follows (see the report on `snapshots::store`).

use super::users::{email, limit, query_rejected};
use crate::audit::{self, Actor, Level};
use crate::auth::{Authorized, Scope, Visibility};
use crate::error::{ApiError, ApiResult};
use crate::json::{present, Body};
use crate::need;
use crate::outbox::snapshots::publish_store;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use jivapay_core::validate;
use jivapay_platform::http::path::Path;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

need!(MerchantsCreate, "merchants", "create", []);
need!(MerchantsRead, "merchants", "read", [Merchant]);
need!(MerchantsUpdate, "merchants", "update", []);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/merchants", post(create).get(list))
        .route("/merchants/{id}", get(read).patch(update))
}

/// Longest merchant name, in characters.
const NAME_MAX_CHARS: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMerchant {
    user_id: Uuid,
    name: String,
    contact_email: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMerchant {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    contact_email: Option<Option<String>>,
    is_enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct MerchantView {
    id: Uuid,
    user_id: Uuid,
    login: String,
    name: String,
    contact_email: Option<String>,
    is_enabled: bool,
    store_count: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// `$1` all, `$2` the caller's own merchant.
const SELECT_VIEW: &str = "SELECT m.id, m.user_id, u.login, m.name, m.contact_email, m.is_enabled,
        (SELECT count(*) FROM stores s WHERE s.merchant_id = m.id) AS store_count,
        m.created_at, m.updated_at
    FROM merchants m
    JOIN users u ON u.id = m.user_id
    WHERE ($1 OR m.id = $2)";

async fn fetch_visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    id: Uuid,
) -> ApiResult<MerchantView> {
    sqlx::query_as(&format!("{SELECT_VIEW} AND m.id = $3"))
        .bind(visibility.all)
        .bind(visibility.merchant_id)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant"))
}

fn to_json(view: &MerchantView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

async fn create(
    State(state): State<AppState>,
    auth: Authorized<MerchantsCreate>,
    Body(request): Body<CreateMerchant>,
) -> ApiResult<(StatusCode, Json<MerchantView>)> {
    if auth.scope != Scope::All {
        return Err(ApiError::forbidden(
            "creating merchants needs the permission merchants:create with scope *",
        ));
    }
    let name = validate::text("name", &request.name, NAME_MAX_CHARS)?;
    let contact_email = request
        .contact_email
        .as_deref()
        .map(|e| email("contact_email", e))
        .transpose()?;
    let mut tx = state.pool.begin().await?;
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(request.user_id)
        .fetch_optional(&mut *tx)
        .await?;
    match role.as_deref() {
        Some("merchant") => {}
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_a_merchant_user",
                format!("user_id belongs to a {other}; a merchant needs a login of role merchant"),
            ))
        }
        None => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_user",
                "no user with this user_id",
            ))
        }
    }
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO merchants (user_id, name, contact_email) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(request.user_id)
    .bind(&name)
    .bind(&contact_email)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        let exists = e
            .as_database_error()
            .is_some_and(|d| d.constraint() == Some("merchants_user_id_key"));
        if exists {
            ApiError::new(
                StatusCode::CONFLICT,
                "merchant_exists",
                "this user already has a merchant",
            )
        } else {
            e.into()
        }
    })?;
    let created = fetch_visible(&mut tx, &auth.visibility(), id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "merchant.create",
            entity_type: "merchant",
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
    auth: Authorized<MerchantsRead>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<MerchantView>>> {
    let Query(query) = query.map_err(query_rejected)?;
    let limit = limit(query.limit)?;
    let visibility = auth.visibility();
    let merchants = sqlx::query_as(&format!(
        "{SELECT_VIEW} ORDER BY m.created_at, m.id LIMIT $3"
    ))
    .bind(visibility.all)
    .bind(visibility.merchant_id)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(merchants))
}

async fn read(
    State(state): State<AppState>,
    auth: Authorized<MerchantsRead>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<MerchantView>> {
    let mut conn = state.pool.acquire().await?;
    fetch_visible(&mut conn, &auth.visibility(), id)
        .await
        .map(Json)
}

async fn update(
    State(state): State<AppState>,
    auth: Authorized<MerchantsUpdate>,
    Path(id): Path<Uuid>,
    Body(request): Body<UpdateMerchant>,
) -> ApiResult<Json<MerchantView>> {
    let name = request
        .name
        .as_deref()
        .map(|n| validate::text("name", n, NAME_MAX_CHARS))
        .transpose()?;
    let contact_email = match &request.contact_email {
        Some(Some(e)) => Some(Some(email("contact_email", e)?)),
        Some(None) => Some(None),
        None => None,
    };
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    sqlx::query("SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let before = fetch_visible(&mut tx, &visibility, id).await?;
    sqlx::query(
        "UPDATE merchants SET name = $2, contact_email = $3, is_enabled = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(name.unwrap_or_else(|| before.name.clone()))
    .bind(contact_email.unwrap_or_else(|| before.contact_email.clone()))
    .bind(request.is_enabled.unwrap_or(before.is_enabled))
    .execute(&mut *tx)
    .await?;
    let after = fetch_visible(&mut tx, &visibility, id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "merchant.update",
            entity_type: "merchant",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: if before.is_enabled && !after.is_enabled {
                Level::Warning
            } else {
                Level::Info
            },
        },
    )
    .await?;
    if before.is_enabled != after.is_enabled {
        let stores: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM stores WHERE merchant_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        for store in stores {
            publish_store(&mut tx, &state.schemas, store).await?;
        }
    }
    tx.commit().await?;
    Ok(Json(after))
}
