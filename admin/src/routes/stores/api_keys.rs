//! Gateway API keys of a store, as the management API handles them: issue, list, revoke and
//! rotate (revoke and issue a replacement in one transaction), for merchants (self-service) and
//! staff within their scope. Every change is audited. Keys are not part of the store's
//! published record: the gateway checks them in PostgreSQL with
//! [`jivapay_core::api_keys::authenticate`], where their format is described too.

use super::{fetch_visible, StoresRead, StoresUpdate};
use crate::audit::{self, Actor, Level};
use crate::auth::Authorized;
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use jivapay_core::api_keys::{generate, hash, masked};
use jivapay_core::validate;
use jivapay_platform::http::path::Path;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// Most keys a store may have in use at once.
pub const MAX_ACTIVE_KEYS: i64 = 10;
/// Longest key name, in characters.
const NAME_MAX_CHARS: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/stores/{id}/api-keys", post(create).get(list))
        .route("/stores/{id}/api-keys/{key_id}", delete(revoke))
        .route("/stores/{id}/api-keys/{key_id}/rotate", post(rotate))
}

/// A key just issued: the only time the whole key is known.
#[derive(Debug, Serialize)]
pub struct Issued {
    pub id: Uuid,
    pub name: String,
    pub key: String,
    pub prefix: String,
    pub masked: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The key this one replaces, after a rotation.
    pub replaces: Option<Uuid>,
}

impl Issued {
    fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "replaces": self.replaces,
        })
    }
}

/// Issues a key for `store_id` (the caller checked the store). A prefix already taken is
/// simply drawn again.
pub async fn issue(
    conn: &mut PgConnection,
    store_id: Uuid,
    name: &str,
    created_by: Option<Uuid>,
) -> sqlx::Result<Issued> {
    loop {
        let (prefix, key) = generate();
        let row: Option<(Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "INSERT INTO store_api_keys (store_id, name, key_prefix, key_hash, created_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT ON CONSTRAINT store_api_keys_key_prefix_key DO NOTHING
             RETURNING id, created_at",
        )
        .bind(store_id)
        .bind(name)
        .bind(&prefix)
        .bind(&hash(&key)[..])
        .bind(created_by)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((id, created_at)) = row {
            return Ok(Issued {
                id,
                name: name.to_owned(),
                masked: masked(&prefix),
                key,
                prefix,
                created_at,
                replaces: None,
            });
        }
    }
}

/// Revokes a key of `store_id`; its name if it was in use, `None` if absent or already revoked.
pub async fn revoke_key(
    conn: &mut PgConnection,
    store_id: Uuid,
    key_id: Uuid,
    revoked_by: Option<Uuid>,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE store_api_keys SET revoked_at = now(), revoked_by = $3
         WHERE id = $1 AND store_id = $2 AND revoked_at IS NULL
         RETURNING name",
    )
    .bind(key_id)
    .bind(store_id)
    .bind(revoked_by)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: Option<String>,
}

/// A key as listed: never the key or its hash.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct KeyView {
    id: Uuid,
    name: String,
    prefix: String,
    #[sqlx(skip)]
    masked: String,
    is_active: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    created_by: Option<Uuid>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    revoked_by: Option<Uuid>,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn create(
    State(state): State<AppState>,
    auth: Authorized<StoresUpdate>,
    Path(store_id): Path<Uuid>,
    Body(request): Body<CreateKey>,
) -> ApiResult<(StatusCode, Json<Issued>)> {
    let name = match request.name.as_deref() {
        Some(n) => validate::text("name", n, NAME_MAX_CHARS)?,
        None => String::new(),
    };
    let mut tx = state.pool.begin().await?;
    fetch_visible(&mut tx, &auth.visibility(), store_id, true).await?;
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM store_api_keys
         WHERE store_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(store_id)
    .fetch_one(&mut *tx)
    .await?;
    if active >= MAX_ACTIVE_KEYS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_api_keys",
            format!("a store may have at most {MAX_ACTIVE_KEYS} keys in use; revoke one first"),
        ));
    }
    let issued = issue(&mut tx, store_id, &name, Some(auth.caller.user_id)).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store_api_key.create",
            entity_type: "store_api_key",
            entity_id: issued.id.to_string(),
            before: None,
            after: Some(issued.audit_json()),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<StoresRead>,
    Path(store_id): Path<Uuid>,
) -> ApiResult<Json<Vec<KeyView>>> {
    let mut conn = state.pool.acquire().await?;
    fetch_visible(&mut conn, &auth.visibility(), store_id, false).await?;
    let mut keys: Vec<KeyView> = sqlx::query_as(
        "SELECT id, name, key_prefix AS prefix,
                revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AS is_active,
                created_at, created_by, expires_at, revoked_at, revoked_by, last_used_at
         FROM store_api_keys WHERE store_id = $1 ORDER BY created_at DESC, id LIMIT 1000",
    )
    .bind(store_id)
    .fetch_all(&mut *conn)
    .await?;
    for key in &mut keys {
        key.masked = masked(&key.prefix);
    }
    Ok(Json(keys))
}

/// Revokes `key_id` of `store_id`, or explains why not (404 absent, 409 already revoked).
async fn revoke_or_refuse(
    conn: &mut PgConnection,
    store_id: Uuid,
    key_id: Uuid,
    revoked_by: Uuid,
) -> ApiResult<String> {
    if let Some(name) = revoke_key(&mut *conn, store_id, key_id, Some(revoked_by)).await? {
        return Ok(name);
    }
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM store_api_keys WHERE id = $1 AND store_id = $2)",
    )
    .bind(key_id)
    .bind(store_id)
    .fetch_one(conn)
    .await?;
    Err(if exists {
        ApiError::new(
            StatusCode::CONFLICT,
            "api_key_revoked",
            "the key is already revoked",
        )
    } else {
        ApiError::not_found("api key")
    })
}

async fn revoke(
    State(state): State<AppState>,
    auth: Authorized<StoresUpdate>,
    Path((store_id, key_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    fetch_visible(&mut tx, &auth.visibility(), store_id, true).await?;
    let name = revoke_or_refuse(&mut tx, store_id, key_id, auth.caller.user_id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store_api_key.revoke",
            entity_type: "store_api_key",
            entity_id: key_id.to_string(),
            before: Some(serde_json::json!({ "id": key_id, "store_id": store_id, "name": name })),
            after: None,
            level: Level::Warning,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    State(state): State<AppState>,
    auth: Authorized<StoresUpdate>,
    Path((store_id, key_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<(StatusCode, Json<Issued>)> {
    let mut tx = state.pool.begin().await?;
    fetch_visible(&mut tx, &auth.visibility(), store_id, true).await?;
    let name = revoke_or_refuse(&mut tx, store_id, key_id, auth.caller.user_id).await?;
    let mut issued = issue(&mut tx, store_id, &name, Some(auth.caller.user_id)).await?;
    issued.replaces = Some(key_id);
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store_api_key.rotate",
            entity_type: "store_api_key",
            entity_id: key_id.to_string(),
            before: Some(serde_json::json!({ "id": key_id, "store_id": store_id, "name": name })),
            after: Some(issued.audit_json()),
            level: Level::Warning,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Issuing and revoking against a real PostgreSQL (the stack's, as every database test here),
/// checked by what the gateway's `authenticate` answers.
#[cfg(test)]
mod tests {
    mod database {
        use super::super::*;
        use jivapay_core::api_keys::authenticate;
        use sqlx::postgres::PgPoolOptions;
        use sqlx::PgPool;

        struct Db {
            pool: PgPool,
            admin_url: String,
            name: String,
        }

        async fn database() -> Db {
            let admin_url = std::env::var("JIVAPAY_TEST_DATABASE_URL").expect(
                "JIVAPAY_TEST_DATABASE_URL is not set: run the tests with `scripts/test`, or start \
                 the stack with `scripts/stack start` and `eval \"$(scripts/stack env)\"`",
            );
            let name = format!("test_{}", Uuid::new_v4().simple());
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect(&admin_url)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let (server, _) = admin_url.rsplit_once('/').unwrap();
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .connect(&format!("{server}/{name}"))
                .await
                .unwrap();
            jivapay_platform::db::migrate(&pool).await.unwrap();
            Db {
                pool,
                admin_url,
                name,
            }
        }

        impl Db {
            async fn drop(self) {
                self.pool.close().await;
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&self.admin_url)
                    .await
                    .unwrap();
                sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&admin)
                .await
                .unwrap();
                admin.close().await;
            }
        }

        async fn store(pool: &PgPool) -> Uuid {
            let user: Uuid = sqlx::query_scalar(
                "INSERT INTO users (login, password_hash, role) VALUES ($1, 'x', 'merchant') RETURNING id",
            )
            .bind(format!("m-{}", Uuid::new_v4().simple()))
            .fetch_one(pool)
            .await
            .unwrap();
            let merchant: Uuid = sqlx::query_scalar(
                "INSERT INTO merchants (user_id, name) VALUES ($1, 'm') RETURNING id",
            )
            .bind(user)
            .fetch_one(pool)
            .await
            .unwrap();
            sqlx::query_scalar(
                "INSERT INTO stores (merchant_id, name, signing_secret_encrypted) VALUES ($1, 's', 'x') RETURNING id",
            )
            .bind(merchant)
            .fetch_one(pool)
            .await
            .unwrap()
        }

        #[tokio::test]
        async fn only_keys_in_use_of_enabled_stores_authenticate() {
            let db = database().await;
            let pool = &db.pool;
            let store_id = store(pool).await;
            let mut conn = pool.acquire().await.unwrap();
            let first = issue(&mut conn, store_id, "main", None).await.unwrap();
            assert_eq!(
                authenticate(pool, &first.key).await.unwrap(),
                Some(store_id)
            );
            let used: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT last_used_at FROM store_api_keys WHERE id = $1")
                    .bind(first.id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert!(used.is_some(), "a successful use is recorded");

            // Near misses never authenticate.
            let mut altered = first.key.clone();
            altered.pop();
            altered.push(if first.key.ends_with('a') { 'b' } else { 'a' });
            for wrong in [
                altered.as_str(),
                "",
                "jp_",
                &first.key[..first.key.len() - 1],
                &first.masked,
            ] {
                assert_eq!(authenticate(pool, wrong).await.unwrap(), None, "{wrong:?}");
            }

            // A revoked key stops at once; revoking twice does nothing.
            assert_eq!(
                revoke_key(&mut conn, store_id, first.id, None)
                    .await
                    .unwrap(),
                Some("main".to_owned())
            );
            assert_eq!(authenticate(pool, &first.key).await.unwrap(), None);
            assert_eq!(
                revoke_key(&mut conn, store_id, first.id, None)
                    .await
                    .unwrap(),
                None
            );

            // Rotation as the route does it: revoke and issue in one transaction.
            let second = issue(&mut conn, store_id, "main", None).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            revoke_key(&mut tx, store_id, second.id, None)
                .await
                .unwrap()
                .unwrap();
            let third = issue(&mut tx, store_id, "main", None).await.unwrap();
            assert_eq!(
                authenticate(pool, &second.key).await.unwrap(),
                Some(store_id),
                "not before commit"
            );
            tx.commit().await.unwrap();
            assert_eq!(
                authenticate(pool, &second.key).await.unwrap(),
                None,
                "the rotated key"
            );
            assert_eq!(
                authenticate(pool, &third.key).await.unwrap(),
                Some(store_id),
                "its replacement"
            );

            // A key of another store does not revoke through this one.
            let other_store = store(pool).await;
            assert_eq!(
                revoke_key(&mut conn, other_store, third.id, None)
                    .await
                    .unwrap(),
                None
            );

            // Expired keys, disabled stores and disabled merchants are refused.
            sqlx::query(
                "UPDATE store_api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
            )
            .bind(third.id)
            .execute(pool)
            .await
            .unwrap();
            assert_eq!(
                authenticate(pool, &third.key).await.unwrap(),
                None,
                "expired"
            );
            let fourth = issue(&mut conn, store_id, "", None).await.unwrap();
            sqlx::query("UPDATE stores SET is_enabled = false WHERE id = $1")
                .bind(store_id)
                .execute(pool)
                .await
                .unwrap();
            assert_eq!(
                authenticate(pool, &fourth.key).await.unwrap(),
                None,
                "store disabled"
            );
            sqlx::query("UPDATE stores SET is_enabled = true WHERE id = $1")
                .bind(store_id)
                .execute(pool)
                .await
                .unwrap();
            assert_eq!(
                authenticate(pool, &fourth.key).await.unwrap(),
                Some(store_id)
            );
            sqlx::query("UPDATE merchants SET is_enabled = false WHERE id = (SELECT merchant_id FROM stores WHERE id = $1)")
                .bind(store_id)
                .execute(pool)
                .await
                .unwrap();
            assert_eq!(
                authenticate(pool, &fourth.key).await.unwrap(),
                None,
                "merchant disabled"
            );
            drop(conn);
            db.drop().await;
        }
    }
}
