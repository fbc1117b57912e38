//! Merchants, stores, store commissions and gateway API keys through the management API:
//! ownership, the signing secret shown once and rotated, the no-loss rule for commissions, API
//! keys shown once and stored hashed, the `stores` outbox, audit rows and bad input.

use base64::Engine as _;
use jivapay_admin::auth::Role;
use jivapay_tests::admin::{AdminApp, Person, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn create_store(app: &AdminApp, merchant: &Person, name: &str) -> Value {
    let (status, body) = app
        .post(
            merchant,
            "/api/stores",
            json!({"name": name, "callback_url": "https://shop.example/cb"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn outbox_stores(app: &AdminApp) -> i64 {
    app.count("outbox WHERE topic = 'stores'").await
}

async fn audit_count(app: &AdminApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
        .bind(action)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// The stored signing secret (current or previous), decrypted with the app's data key.
async fn stored_secret(app: &AdminApp, store_id: &str, column: &str) -> Option<String> {
    let stored: Option<String> =
        sqlx::query_scalar(&format!("SELECT {column} FROM stores WHERE id = $1::uuid"))
            .bind(store_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    stored.map(|s| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("base64 text");
        app.state
            .data_key
            .decrypt(&bytes)
            .expect("decrypts with the data key")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchants_are_made_by_staff_and_seen_by_their_owner_only() {
    let app = AdminApp::start_with_relay(false).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let reader = app.person(Role::Support, &["merchants:read:*"]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let other = app.person(Role::Merchant, &[]).await;
    let trader = app.person(Role::Trader, &[]).await;

    let login = format!("shop-{}", Uuid::new_v4().simple());
    let (status, user) = app
        .post(
            &admin,
            "/api/users",
            json!({"login": login, "password": PASSWORD, "role": "merchant"}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_str().unwrap();
    let body = json!({"user_id": user_id, "name": "Shop LLC", "contact_email": "ops@shop.example"});
    for who in [&reader, &merchant, &trader] {
        assert_eq!(
            app.post(who, "/api/merchants", body.clone()).await.0,
            403,
            "{:?}",
            who.role
        );
    }
    assert_eq!(
        app.call(Method::POST, "/api/merchants", None, Some(body.clone()))
            .await
            .0,
        401
    );
    let (status, created) = app.post(&admin, "/api/merchants", body.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["name"].as_str(), created["login"].as_str()),
        (Some("Shop LLC"), Some(login.as_str()))
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(audit_count(&app, "merchant.create").await, 1);
    let (status, answer) = app.post(&admin, "/api/merchants", body).await;
    assert_eq!((status, code(&answer)), (409, Some("merchant_exists")));

    // The new merchant logs in and sees himself only.
    let token = app.login(Role::Merchant, &login, PASSWORD).await;
    let (status, list) = app
        .call(Method::GET, "/api/merchants", Some(&token), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        list.as_array()
            .map(|l| l.iter().map(|m| m["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(id)])
    );
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/api/merchants/{id}"),
            Some(&token),
            None
        )
        .await
        .0,
        200
    );
    let other_path = format!("/api/merchants/{}", other.merchant_id.unwrap());
    assert_eq!(
        app.call(Method::GET, &other_path, Some(&token), None)
            .await
            .0,
        404
    );
    let (status, list) = app.get(&reader, "/api/merchants").await;
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(3)));
    assert_eq!(app.get(&reader, &other_path).await.0, 200);
    assert_eq!(app.get(&trader, &other_path).await.0, 403);
    assert_eq!(app.get(&trader, "/api/merchants").await.0, 403);
    assert_eq!(app.call(Method::GET, &other_path, None, None).await.0, 401);
    assert_eq!(
        app.call(Method::GET, "/api/merchants", None, None).await.0,
        401
    );

    // Editing is for staff with merchants:update.
    let path = format!("/api/merchants/{id}");
    assert_eq!(
        app.patch(&merchant, &path, json!({"name": "Mine"})).await.0,
        403
    );
    assert_eq!(
        app.call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"name": "Mine"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        app.patch(&reader, &path, json!({"name": "Mine"})).await.0,
        403
    );
    assert_eq!(
        app.call(Method::PATCH, &path, None, Some(json!({"name": "Mine"})))
            .await
            .0,
        401
    );
    let (status, updated) = app
        .patch(
            &admin,
            &path,
            json!({"name": "Shop Two", "contact_email": null, "is_enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (
            updated["name"].as_str(),
            updated["contact_email"].clone(),
            updated["is_enabled"].as_bool()
        ),
        (Some("Shop Two"), Value::Null, Some(false))
    );
    let level: String =
        sqlx::query_scalar("SELECT level FROM audit_log WHERE action = 'merchant.update'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(level, "warning", "disabling a merchant");
    assert_eq!(
        app.patch(
            &admin,
            &format!("/api/merchants/{}", Uuid::new_v4()),
            json!({})
        )
        .await
        .0,
        404
    );

    // Bad input writes nothing.
    let (merchants, audits) = (app.count("merchants").await, app.count("audit_log").await);
    let trader_user = trader.user_id.to_string();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"user_id": trader_user, "name": "X"}),
            422,
            "not_a_merchant_user",
        ),
        (
            json!({"user_id": Uuid::new_v4(), "name": "X"}),
            422,
            "unknown_user",
        ),
        (
            json!({"user_id": "not-a-uuid", "name": "X"}),
            422,
            "invalid_body",
        ),
        (
            json!({"user_id": user_id, "name": "  "}),
            422,
            "validation_failed",
        ),
        (
            json!({"user_id": user_id, "name": "X", "contact_email": "nope"}),
            422,
            "validation_failed",
        ),
        (
            json!({"user_id": user_id, "name": "X", "vip": true}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, expected) in cases {
        let (got, answer) = app.post(&admin, "/api/merchants", body.clone()).await;
        assert_eq!(
            (got, code(&answer)),
            (status, Some(expected)),
            "{body}: {answer}"
        );
    }
    for (body, expected) in [
        (json!({"name": ""}), "validation_failed"),
        (json!({"name": "x".repeat(129)}), "validation_failed"),
        (json!({"contact_email": "a b@c"}), "validation_failed"),
        (json!({"is_enabled": "yes"}), "invalid_body"),
        (json!({"owner": "me"}), "invalid_body"),
    ] {
        let (got, answer) = app.patch(&admin, &path, body.clone()).await;
        assert_eq!(
            (got, code(&answer)),
            (422, Some(expected)),
            "{body}: {answer}"
        );
    }
    for query in ["limit=0", "limit=x", "colour=red"] {
        assert_eq!(
            app.get(&admin, &format!("/api/merchants?{query}")).await.0,
            422,
            "{query}"
        );
    }
    assert_eq!(app.count("merchants").await, merchants);
    assert_eq!(app.count("audit_log").await, audits);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_is_created_with_its_signing_secret_shown_once() {
    let app = AdminApp::start_with_relay(false).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let other = app.person(Role::Merchant, &[]).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let reader = app.person(Role::Support, &["stores:read:*"]).await;
    let own_scope = app.person(Role::Support, &["stores:create:own"]).await;
    let trader = app.person(Role::Trader, &[]).await;

    let created = create_store(&app, &merchant, "Main").await;
    let id = created["id"].as_str().unwrap();
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&secret["whsec_".len()..])
            .unwrap()
            .len(),
        32
    );
    assert_eq!(created["merchant_id"], json!(merchant.merchant_id));
    assert_eq!(created["callback_url"], "https://shop.example/cb");
    assert_eq!(
        stored_secret(&app, id, "signing_secret_encrypted")
            .await
            .as_deref(),
        Some(secret.as_str())
    );
    let raw: String =
        sqlx::query_scalar("SELECT signing_secret_encrypted FROM stores WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(
        !raw.contains(&secret["whsec_".len()..]),
        "not stored in clear"
    );
    assert_eq!(outbox_stores(&app).await, 1);
    assert_eq!(audit_count(&app, "store.create").await, 1);
    let leaked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE after::text LIKE '%whsec_%'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(leaked, 0, "the audit log never holds the secret");
    // Never again: not in reads, not in lists.
    for who in [&merchant, &admin] {
        let (status, body) = app.get(who, &format!("/api/stores/{id}")).await;
        assert_eq!(status, 200);
        assert!(
            !body.to_string().contains("whsec_") && body.get("signing_secret").is_none(),
            "{body}"
        );
        let (_, list) = app.get(who, "/api/stores").await;
        assert!(!list.to_string().contains("whsec_"));
    }

    // Staff name the merchant; a merchant cannot create for another.
    let (status, body) = app
        .post(&admin, "/api/stores", json!({"name": "Staff-made"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (422, Some("validation_failed")),
        "merchant_id is required for staff"
    );
    let (status, body) = app
        .post(
            &admin,
            "/api/stores",
            json!({"name": "Staff-made", "merchant_id": other.merchant_id}),
        )
        .await;
    assert_eq!(
        (status, body["merchant_id"].clone()),
        (201, json!(other.merchant_id)),
        "{body}"
    );
    let (status, _) = app
        .post(
            &merchant,
            "/api/stores",
            json!({"name": "Sneaky", "merchant_id": other.merchant_id}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &admin,
            "/api/stores",
            json!({"name": "Ghost", "merchant_id": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &own_scope,
            "/api/stores",
            json!({"name": "Own", "merchant_id": other.merchant_id}),
        )
        .await;
    assert_eq!(status, 404, "scope own reaches no merchant");
    for who in [&reader, &trader] {
        assert_eq!(
            app.post(who, "/api/stores", json!({"name": "No"})).await.0,
            403
        );
    }
    assert_eq!(
        app.call(
            Method::POST,
            "/api/stores",
            None,
            Some(json!({"name": "No"}))
        )
        .await
        .0,
        401
    );
    let (status, body) = app
        .post(&merchant, "/api/stores", json!({"name": "Main"}))
        .await;
    assert_eq!((status, code(&body)), (409, Some("store_exists")));
    sqlx::query("UPDATE merchants SET is_enabled = false WHERE id = $1")
        .bind(other.merchant_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = app
        .post(&other, "/api/stores", json!({"name": "Late"}))
        .await;
    assert_eq!((status, code(&body)), (409, Some("merchant_disabled")));

    // Bad input writes nothing.
    let (stores, audits, outbox) = (
        app.count("stores").await,
        app.count("audit_log").await,
        outbox_stores(&app).await,
    );
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"name": ""}), 422, "validation_failed"),
        (json!({"name": "x".repeat(129)}), 422, "validation_failed"),
        (
            json!({"name": "A", "callback_url": "ftp://shop.example"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "A", "callback_url": "https://user:pw@shop.example"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "A", "success_url": "javascript:alert(1)"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "A", "fail_url": "https://"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "A", "signing_secret": "whsec_mine"}),
            422,
            "invalid_body",
        ),
        (json!({"name": 5}), 422, "invalid_body"),
        (json!({}), 422, "invalid_body"),
    ];
    for (body, status, expected) in cases {
        let (got, answer) = app.post(&merchant, "/api/stores", body.clone()).await;
        assert_eq!(
            (got, code(&answer)),
            (status, Some(expected)),
            "{body}: {answer}"
        );
    }
    let raw = app
        .client
        .post(format!("{}/api/stores", app.base))
        .bearer_auth(&merchant.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(
        raw.json::<Value>().await.unwrap()["error"]["code"],
        "malformed_json"
    );
    assert_eq!(app.count("stores").await, stores);
    assert_eq!(app.count("audit_log").await, audits);
    assert_eq!(outbox_stores(&app).await, outbox);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_are_read_and_edited_within_scope() {
    let app = AdminApp::start_with_relay(false).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let other = app.person(Role::Merchant, &[]).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let reader = app.person(Role::Support, &["stores:read:*"]).await;
    let trader = app.person(Role::Trader, &[]).await;
    let created = create_store(&app, &merchant, "Main").await;
    create_store(&app, &other, "Theirs").await;
    let path = format!("/api/stores/{}", created["id"].as_str().unwrap());

    let (_, list) = app.get(&merchant, "/api/stores").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (_, list) = app.get(&admin, "/api/stores").await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let (_, list) = app
        .get(
            &admin,
            &format!("/api/stores?merchant_id={}", other.merchant_id.unwrap()),
        )
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(app.get(&reader, &path).await.0, 200);
    assert_eq!(app.get(&other, &path).await.0, 404);
    assert_eq!(app.get(&trader, &path).await.0, 403);
    assert_eq!(app.get(&trader, "/api/stores").await.0, 403);
    assert_eq!(app.call(Method::GET, &path, None, None).await.0, 401);
    assert_eq!(
        app.call(Method::GET, "/api/stores", None, None).await.0,
        401
    );
    assert_eq!(app.get(&admin, "/api/stores?limit=0").await.0, 422);

    // The owner edits; a null URL clears it. Each edit is audited and reaches the outbox.
    let outbox = outbox_stores(&app).await;
    let (status, body) = app
        .patch(&merchant, &path, json!({"name": "Renamed", "callback_url": null, "success_url": "https://shop.example/ok", "pay_out_enabled": false}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["name"].as_str(),
            body["callback_url"].clone(),
            body["success_url"].as_str(),
            body["pay_out_enabled"].as_bool()
        ),
        (
            Some("Renamed"),
            Value::Null,
            Some("https://shop.example/ok"),
            Some(false)
        )
    );
    assert_eq!(
        outbox_stores(&app).await,
        outbox + 1,
        "a store mutation leaves an outbox row for topic stores"
    );
    assert_eq!(audit_count(&app, "store.update").await, 1);
    // Only staff switch a store on or off.
    let (status, body) = app
        .patch(&merchant, &path, json!({"is_enabled": false}))
        .await;
    assert_eq!((status, code(&body)), (403, Some("forbidden")));
    let (status, body) = app.patch(&admin, &path, json!({"is_enabled": false})).await;
    assert_eq!((status, body["is_enabled"].as_bool()), (200, Some(false)));
    // Others cannot.
    assert_eq!(
        app.patch(&other, &path, json!({"name": "Mine"})).await.0,
        404
    );
    assert_eq!(
        app.patch(&reader, &path, json!({"name": "Mine"})).await.0,
        403
    );
    assert_eq!(
        app.patch(&trader, &path, json!({"name": "Mine"})).await.0,
        403
    );
    assert_eq!(
        app.call(Method::PATCH, &path, None, Some(json!({"name": "Mine"})))
            .await
            .0,
        401
    );

    let (audits, outbox) = (app.count("audit_log").await, outbox_stores(&app).await);
    for (body, expected) in [
        (json!({"callback_url": "not a url"}), "validation_failed"),
        (json!({"fail_url": "http://"}), "validation_failed"),
        (json!({"name": " "}), "validation_failed"),
        (json!({"pay_in_enabled": 1}), "invalid_body"),
        (json!({"merchant_id": other.merchant_id}), "invalid_body"),
    ] {
        let (got, answer) = app.patch(&merchant, &path, body.clone()).await;
        assert_eq!(
            (got, code(&answer)),
            (422, Some(expected)),
            "{body}: {answer}"
        );
    }
    create_store(&app, &merchant, "Second").await;
    let (got, answer) = app.patch(&merchant, &path, json!({"name": "Second"})).await;
    assert_eq!((got, code(&answer)), (409, Some("store_exists")));
    assert_eq!(
        app.count("audit_log").await,
        audits + 1,
        "only the second store's creation"
    );
    assert_eq!(outbox_stores(&app).await, outbox + 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_signing_secret_keeps_the_old_one_for_a_day() {
    let app = AdminApp::start_with_relay(false).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let other = app.person(Role::Merchant, &[]).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let reader = app.person(Role::Support, &["stores:read:*"]).await;
    let trader = app.person(Role::Trader, &[]).await;
    let created = create_store(&app, &merchant, "Main").await;
    let id = created["id"].as_str().unwrap();
    let first = created["signing_secret"].as_str().unwrap().to_owned();
    let path = format!("/api/stores/{id}/signing-secret/rotate");

    assert_eq!(app.post(&other, &path, json!({})).await.0, 404);
    assert_eq!(app.post(&reader, &path, json!({})).await.0, 403);
    assert_eq!(app.post(&trader, &path, json!({})).await.0, 403);
    assert_eq!(app.call(Method::POST, &path, None, None).await.0, 401);
    assert_eq!(
        app.post(
            &admin,
            &format!("/api/stores/{}/signing-secret/rotate", Uuid::new_v4()),
            json!({})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        stored_secret(&app, id, "previous_signing_secret_encrypted").await,
        None
    );

    let outbox = outbox_stores(&app).await;
    let (status, body) = app.post(&merchant, &path, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let second = body["signing_secret"].as_str().unwrap().to_owned();
    assert!(second.starts_with("whsec_") && second != first);
    assert_eq!(
        stored_secret(&app, id, "signing_secret_encrypted")
            .await
            .as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        stored_secret(&app, id, "previous_signing_secret_encrypted")
            .await
            .as_deref(),
        Some(first.as_str())
    );
    let hours: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM previous_signing_secret_expires_at - now())::float8 / 3600 FROM stores WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!((23.9..=24.0).contains(&hours), "{hours}");
    assert!(body["previous_signing_secret_expires_at"].is_string());
    assert_eq!(outbox_stores(&app).await, outbox + 1);
    assert_eq!(audit_count(&app, "store.signing_secret.rotate").await, 1);
    // Staff may rotate too; the secret before becomes the previous one.
    let (status, body) = app.post(&admin, &path, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        stored_secret(&app, id, "previous_signing_secret_encrypted")
            .await
            .as_deref(),
        Some(second.as_str())
    );
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE before::text LIKE '%whsec_%' OR after::text LIKE '%whsec_%'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(leaked, 0);
    assert!(body["signing_secret"].as_str().unwrap() != second);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_commissions_never_lose_money_without_allow_loss() {
    let app = AdminApp::start_with_relay(false).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let pricing = app.person(Role::Support, &["commissions:update:*"]).await;
    let own_scope = app
        .person(
            Role::Support,
            &["commissions:update:own", "commissions:allow_loss:*"],
        )
        .await;
    let reader = app
        .person(Role::Support, &["stores:read:*", "commissions:read:*"])
        .await;
    let trader = app.person(Role::Trader, &[]).await;
    sqlx::query("INSERT INTO trader_commissions (trader_id, payment_method, direction, percent) VALUES ($1, 'sbp', 'pay_in', 2.5)")
        .bind(trader.trader_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let store = create_store(&app, &merchant, "Main").await;
    let id = store["id"].as_str().unwrap();
    let path = format!("/api/stores/{id}/commissions/sbp/pay_in");

    let (commissions, audits, outbox) = (
        app.count("store_commissions").await,
        app.count("audit_log").await,
        outbox_stores(&app).await,
    );
    let (status, body) = app.put(&pricing, &path, json!({"percent": "2.0"})).await;
    assert_eq!(
        (status, code(&body)),
        (422, Some("commission_would_lose_money")),
        "{body}"
    );
    let (status, body) = app
        .put(
            &pricing,
            &path,
            json!({"percent": "2.0", "allow_loss": true}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("forbidden")),
        "allow_loss needs commissions:allow_loss"
    );
    let cases: Vec<(String, Value, u16, &str)> = vec![
        (
            path.clone(),
            json!({"percent": "-1"}),
            422,
            "validation_failed",
        ),
        (
            path.clone(),
            json!({"percent": "100.5"}),
            422,
            "validation_failed",
        ),
        (
            path.clone(),
            json!({"percent": "1000000"}),
            422,
            "validation_failed",
        ),
        (
            path.clone(),
            json!({"percent": "3.12345"}),
            422,
            "validation_failed",
        ),
        (path.clone(), json!({"percent": "abc"}), 422, "invalid_body"),
        (
            path.clone(),
            json!({"percent": "3", "fixed_fee": "1"}),
            422,
            "invalid_body",
        ),
        (path.clone(), json!({}), 422, "invalid_body"),
        (
            format!("/api/stores/{id}/commissions/sbp/sideways"),
            json!({"percent": "3"}),
            422,
            "validation_failed",
        ),
        (
            format!("/api/stores/{id}/commissions/pigeon/pay_in"),
            json!({"percent": "3"}),
            422,
            "unknown_payment_method",
        ),
        (
            format!("/api/stores/{}/commissions/sbp/pay_in", Uuid::new_v4()),
            json!({"percent": "3"}),
            404,
            "not_found",
        ),
    ];
    for (path, body, status, expected) in cases {
        let (got, answer) = app.put(&pricing, &path, body.clone()).await;
        assert_eq!(
            (got, code(&answer)),
            (status, Some(expected)),
            "{path} {body}: {answer}"
        );
    }
    // Who may not.
    for who in [&merchant, &reader, &trader] {
        assert_eq!(
            app.put(who, &path, json!({"percent": "3"})).await.0,
            403,
            "{:?}",
            who.role
        );
        assert_eq!(app.delete(who, &path).await.0, 403, "{:?}", who.role);
    }
    assert_eq!(
        app.put(&own_scope, &path, json!({"percent": "3"})).await.0,
        404,
        "scope own reaches no store"
    );
    assert_eq!(
        app.call(Method::PUT, &path, None, Some(json!({"percent": "3"})))
            .await
            .0,
        401
    );
    assert_eq!(app.call(Method::DELETE, &path, None, None).await.0, 401);
    assert_eq!(app.count("store_commissions").await, commissions);
    assert_eq!(app.count("audit_log").await, audits);
    assert_eq!(outbox_stores(&app).await, outbox);

    // At or above the trader's commission is fine; below only with allow_loss by its holder.
    let (status, body) = app.put(&pricing, &path, json!({"percent": "3"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["commissions"][0]["percent"], "3.0000");
    assert_eq!(outbox_stores(&app).await, outbox + 1);
    let (status, body) = app
        .put(&admin, &path, json!({"percent": "2.0", "allow_loss": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["commissions"][0]["allow_loss"].as_bool(),
            body["commissions"][0]["percent"].as_str()
        ),
        (Some(true), Some("2.0000"))
    );
    assert_eq!(
        app.count("store_commissions").await,
        commissions + 1,
        "updated in place"
    );
    let level: String = sqlx::query_scalar("SELECT level FROM audit_log WHERE action = 'store.commission.set' ORDER BY created_at DESC LIMIT 1")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(level, "warning");
    // The merchant sees his commission.
    let (_, mine) = app.get(&merchant, &format!("/api/stores/{id}")).await;
    assert_eq!(mine["commissions"][0]["payment_method"], "sbp");

    // Delete: staff only, then it is gone.
    assert_eq!(
        app.delete(
            &pricing,
            &format!("/api/stores/{id}/commissions/sbp/pay_out")
        )
        .await
        .0,
        404
    );
    assert_eq!(app.delete(&pricing, &path).await.0, 204);
    assert_eq!(app.count("store_commissions").await, commissions);
    assert_eq!(app.delete(&pricing, &path).await.0, 404);
    assert_eq!(outbox_stores(&app).await, outbox + 3);
    assert_eq!(audit_count(&app, "store.commission.delete").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_shown_once_stored_hashed_revoked_and_rotated() {
    let app = AdminApp::start_with_relay(false).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let other = app.person(Role::Merchant, &[]).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let reader = app.person(Role::Support, &["stores:read:*"]).await;
    let trader = app.person(Role::Trader, &[]).await;
    let store = create_store(&app, &merchant, "Main").await;
    let keys = format!("/api/stores/{}/api-keys", store["id"].as_str().unwrap());

    let (status, issued) = app
        .post(&merchant, &keys, json!({"name": "production"}))
        .await;
    assert_eq!(status, 201, "{issued}");
    let key = issued["key"].as_str().unwrap().to_owned();
    let prefix = issued["prefix"].as_str().unwrap().to_owned();
    assert_eq!(prefix.len(), 8);
    assert!(
        key.starts_with(&format!("jp_{prefix}_")) && key.len() == 3 + 8 + 1 + 32,
        "{key}"
    );
    assert_eq!(issued["masked"], format!("jp_{prefix}_…"));
    let hashed: bool = sqlx::query_scalar("SELECT key_hash = sha256(convert_to($1, 'UTF8')) FROM store_api_keys WHERE key_prefix = $2")
        .bind(&key)
        .bind(&prefix)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(hashed, "SHA-256 of the whole key is stored");
    let in_clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE after::text LIKE '%' || $1 || '%'",
    )
    .bind(&key[12..])
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(in_clear, 0, "the audit log never holds the key");
    assert_eq!(audit_count(&app, "store_api_key.create").await, 1);

    let (status, list) = app.get(&merchant, &keys).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["masked"], format!("jp_{prefix}_…"));
    assert_eq!(
        (list[0]["name"].as_str(), list[0]["is_active"].as_bool()),
        (Some("production"), Some(true))
    );
    assert!(
        !list.to_string().contains(&key[12..])
            && list[0].get("key_hash").is_none()
            && list[0].get("key").is_none()
    );
    assert_eq!(app.get(&reader, &keys).await.0, 200);

    // Others: 404 for another merchant, 403 without the permission, 401 without a token.
    assert_eq!(app.get(&other, &keys).await.0, 404);
    assert_eq!(app.post(&other, &keys, json!({})).await.0, 404);
    for who in [&reader, &trader] {
        assert_eq!(app.post(who, &keys, json!({})).await.0, 403);
    }
    assert_eq!(app.get(&trader, &keys).await.0, 403);
    assert_eq!(app.call(Method::GET, &keys, None, None).await.0, 401);
    assert_eq!(
        app.call(Method::POST, &keys, None, Some(json!({}))).await.0,
        401
    );
    let (count, audits) = (
        app.count("store_api_keys").await,
        app.count("audit_log").await,
    );
    for (body, expected) in [
        (json!({"name": ""}), "validation_failed"),
        (json!({"name": "x".repeat(65)}), "validation_failed"),
        (json!({"name": "a", "scope": "all"}), "invalid_body"),
        (json!({"name": 1}), "invalid_body"),
    ] {
        let (got, answer) = app.post(&merchant, &keys, body.clone()).await;
        assert_eq!(
            (got, code(&answer)),
            (422, Some(expected)),
            "{body}: {answer}"
        );
    }
    assert_eq!(
        (
            app.count("store_api_keys").await,
            app.count("audit_log").await
        ),
        (count, audits)
    );

    // Rotation: the old key is revoked and a new one issued, in one step.
    let key_id = issued["id"].as_str().unwrap();
    let rotate = format!("{keys}/{key_id}/rotate");
    assert_eq!(app.post(&other, &rotate, json!({})).await.0, 404);
    assert_eq!(app.post(&reader, &rotate, json!({})).await.0, 403);
    assert_eq!(app.post(&trader, &rotate, json!({})).await.0, 403);
    assert_eq!(app.call(Method::POST, &rotate, None, None).await.0, 401);
    let (status, rotated) = app.post(&merchant, &rotate, json!({})).await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(
        (rotated["replaces"].as_str(), rotated["name"].as_str()),
        (Some(key_id), Some("production"))
    );
    assert_ne!(rotated["key"], issued["key"]);
    let active: Vec<String> =
        sqlx::query_scalar("SELECT key_prefix FROM store_api_keys WHERE revoked_at IS NULL")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(active, [rotated["prefix"].as_str().unwrap()]);
    let revoked_by: Option<Uuid> =
        sqlx::query_scalar("SELECT revoked_by FROM store_api_keys WHERE id = $1::uuid")
            .bind(key_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(revoked_by, Some(merchant.user_id));
    let (status, body) = app.post(&merchant, &rotate, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (409, Some("api_key_revoked")),
        "a revoked key cannot be rotated"
    );

    // Revocation.
    let revoke = format!("{keys}/{}", rotated["id"].as_str().unwrap());
    assert_eq!(app.delete(&other, &revoke).await.0, 404);
    assert_eq!(app.delete(&reader, &revoke).await.0, 403);
    assert_eq!(app.delete(&trader, &revoke).await.0, 403);
    assert_eq!(app.call(Method::DELETE, &revoke, None, None).await.0, 401);
    assert_eq!(
        app.delete(&admin, &format!("{keys}/{}", Uuid::new_v4()))
            .await
            .0,
        404
    );
    assert_eq!(app.delete(&admin, &revoke).await.0, 204);
    let (status, body) = app.delete(&merchant, &revoke).await;
    assert_eq!((status, code(&body)), (409, Some("api_key_revoked")));
    let (_, list) = app.get(&merchant, &keys).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|k| k["is_active"] == false && k["revoked_at"].is_string()),
        "{list}"
    );
    assert_eq!(
        app.count("store_api_keys WHERE revoked_at IS NULL").await,
        0
    );
    assert_eq!(audit_count(&app, "store_api_key.rotate").await, 1);
    assert_eq!(audit_count(&app, "store_api_key.revoke").await, 1);

    // A store may have at most ten keys in use.
    for _ in 0..10 {
        assert_eq!(app.post(&merchant, &keys, json!({})).await.0, 201);
    }
    let (status, body) = app.post(&merchant, &keys, json!({})).await;
    assert_eq!((status, code(&body)), (409, Some("too_many_api_keys")));
    app.stop().await;
}
