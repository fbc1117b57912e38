//! Users and staff permissions through the management API: who may create, read, block and
//! re-permission whom; blocking revokes tokens at once; nobody grants more than he holds or
//! manages someone more powerful; bad input is refused with stable codes and writes nothing.

use jivapay_admin::auth::Role;
use jivapay_tests::admin::{AdminApp, Person, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

fn login() -> String {
    format!("user-{}", Uuid::new_v4().simple())
}

fn support_body(login: &str) -> Value {
    json!({
        "login": login,
        "password": "a long enough password",
        "role": "support",
        "display_name": "Olga",
        "email": "olga@example.com",
        "granted_permissions": ["orders:read:*", "users:read:own"],
        "role_description": "first line"
    })
}

async fn audit_rows(app: &AdminApp, action: &str, entity_id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT level FROM audit_log WHERE action = $1 AND entity_id = $2 ORDER BY created_at",
    )
    .bind(action)
    .bind(entity_id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

fn has_secret_fields(value: &Value) -> bool {
    let text = value.to_string();
    text.contains("password") || text.contains("token_version") || text.contains("$argon2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_create_users_of_every_role() {
    let app = AdminApp::start_with_relay(false).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let reader = app.person(Role::Support, &["users:read:*"]).await;
    let trader = app.person(Role::Trader, &[]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let lead = app.person(Role::TeamLead, &["users:create:team"]).await;

    let support_login = login();
    let (status, created) = app
        .post(&admin, "/api/users", support_body(&support_login))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["role"], "support");
    assert_eq!(
        created["granted_permissions"],
        json!(["orders:read:*", "users:read:own"])
    );
    assert_eq!(created["role_description"], "first line");
    assert_eq!(created["is_blocked"], false);
    assert!(!has_secret_fields(&created), "{created}");
    let id = created["id"].as_str().unwrap();
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$"),
        "Argon2id, not the password"
    );
    // The new person logs in with his password and sees his permissions.
    let token = app
        .login(Role::Support, &support_login, "a long enough password")
        .await;
    let (status, me) = app.call(Method::GET, "/api/me", Some(&token), None).await;
    assert_eq!(
        (status, me["granted_permissions"].clone()),
        (200, json!(["orders:read:*", "users:read:own"]))
    );
    assert_eq!(
        audit_rows(&app, "user.create", id).await,
        ["critical"],
        "granting is a permission change"
    );

    // A trader login gets no staff profile; the audit level is info.
    let profiles = app.count("staff_profiles").await;
    let (status, trader_user) = app
        .post(
            &admin,
            "/api/users",
            json!({"login": login(), "password": PASSWORD, "role": "trader"}),
        )
        .await;
    assert_eq!(status, 201, "{trader_user}");
    assert_eq!(trader_user["granted_permissions"], Value::Null);
    assert_eq!(app.count("staff_profiles").await, profiles);
    assert_eq!(
        audit_rows(&app, "user.create", trader_user["id"].as_str().unwrap()).await,
        ["info"]
    );
    // A team lead login gets an (empty) staff profile.
    let (status, lead_user) = app
        .post(
            &admin,
            "/api/users",
            json!({"login": login(), "password": PASSWORD, "role": "team_lead"}),
        )
        .await;
    assert_eq!(
        (status, lead_user["granted_permissions"].clone()),
        (201, json!([])),
        "{lead_user}"
    );
    assert_eq!(app.count("staff_profiles").await, profiles + 1);

    // Who may not create.
    let users = app.count("users").await;
    for who in [&reader, &trader, &merchant] {
        let (status, body) = app.post(who, "/api/users", support_body(&login())).await;
        assert_eq!(
            (status, code(&body)),
            (403, Some("forbidden")),
            "{:?}",
            who.role
        );
    }
    let (status, _) = app.post(&lead, "/api/users", support_body(&login())).await;
    assert_eq!(status, 403, "creating users is not a team-scoped action");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/users",
            None,
            Some(support_body(&login())),
        )
        .await;
    assert_eq!((status, code(&body)), (401, Some("unauthenticated")));
    assert_eq!(app.count("users").await, users);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_grants_more_than_he_holds() {
    let app = AdminApp::start_with_relay(false).await;
    let hr = app
        .person(Role::Support, &["users:*:*", "orders:read:team"])
        .await;
    let users = app.count("users").await;
    for grants in [
        json!(["*:*:*"]),
        json!(["orders:read:*"]),
        json!(["orders:*:team"]),
        json!(["traders:read:own"]),
    ] {
        let mut body = support_body(&login());
        body["granted_permissions"] = grants.clone();
        let (status, answer) = app.post(&hr, "/api/users", body).await;
        assert_eq!(
            (status, code(&answer)),
            (403, Some("exceeds_caller_permissions")),
            "{grants}"
        );
    }
    assert_eq!(app.count("users").await, users);
    let mut body = support_body(&login());
    body["granted_permissions"] = json!(["orders:read:team", "orders:read:own", "users:read:*"]);
    let (status, answer) = app.post(&hr, "/api/users", body).await;
    assert_eq!(
        status, 201,
        "what he holds, at the same or a narrower scope: {answer}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_user_input_is_refused_and_nothing_written() {
    let app = AdminApp::start_with_relay(false).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let taken = login();
    let (status, _) = app.post(&admin, "/api/users", support_body(&taken)).await;
    assert_eq!(status, 201);
    let (users, profiles, audits) = (
        app.count("users").await,
        app.count("staff_profiles").await,
        app.count("audit_log").await,
    );

    let with = |field: &str, value: Value| {
        let mut body = support_body(&login());
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = support_body(&login());
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let mut trader_with_grants = support_body(&login());
    trader_with_grants["role"] = json!("trader");
    let mut merchant_with_description = support_body(&login());
    merchant_with_description["role"] = json!("merchant");
    merchant_with_description
        .as_object_mut()
        .unwrap()
        .remove("granted_permissions");
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "unknown field",
            with("is_admin", json!(true)),
            422,
            "invalid_body",
        ),
        ("missing password", without("password"), 422, "invalid_body"),
        (
            "wrong type",
            with("granted_permissions", json!("orders:read:*")),
            422,
            "invalid_body",
        ),
        (
            "short password",
            with("password", json!("123456789")),
            422,
            "validation_failed",
        ),
        (
            "long password",
            with("password", json!("x".repeat(129))),
            422,
            "validation_failed",
        ),
        (
            "short login",
            with("login", json!("ab")),
            422,
            "validation_failed",
        ),
        (
            "login with spaces",
            with("login", json!(" spaced login ")),
            422,
            "validation_failed",
        ),
        (
            "unknown role",
            with("role", json!("superuser")),
            422,
            "validation_failed",
        ),
        (
            "bad email",
            with("email", json!("not an email")),
            422,
            "validation_failed",
        ),
        (
            "empty display name",
            with("display_name", json!("  ")),
            422,
            "validation_failed",
        ),
        (
            "malformed grant",
            with("granted_permissions", json!(["orders:read"])),
            422,
            "invalid_permission",
        ),
        (
            "bad scope",
            with("granted_permissions", json!(["orders:read:all"])),
            422,
            "invalid_permission",
        ),
        (
            "upper case",
            with("granted_permissions", json!(["Orders:read:*"])),
            422,
            "invalid_permission",
        ),
        ("grants for a trader", trader_with_grants, 422, "not_staff"),
        (
            "description for a merchant",
            merchant_with_description,
            422,
            "not_staff",
        ),
        (
            "login taken, other case",
            with("login", json!(taken.to_uppercase())),
            409,
            "login_taken",
        ),
    ];
    for (name, body, status, expected) in cases {
        let (got, answer) = app.post(&admin, "/api/users", body).await;
        assert_eq!(
            (got, code(&answer)),
            (status, Some(expected)),
            "{name}: {answer}"
        );
    }
    let raw = app
        .client
        .post(format!("{}/api/users", app.base))
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body("{\"login\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(
        raw.json::<Value>().await.unwrap()["error"]["code"],
        "malformed_json"
    );

    assert_eq!(app.count("users").await, users);
    assert_eq!(app.count("staff_profiles").await, profiles);
    assert_eq!(app.count("audit_log").await, audits);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_read_within_scope_and_never_with_secrets() {
    let app = AdminApp::start_with_relay(false).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let own = app.person(Role::Support, &["users:read:own"]).await;
    let lead = app.person(Role::TeamLead, &["users:read:team"]).await;
    let member = app.person(Role::Trader, &[]).await;
    let outsider = app.person(Role::Trader, &[]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    app.join_team(&member, lead.team_id.unwrap()).await;

    let (status, all) = app.get(&admin, "/api/users").await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 6);
    assert!(!has_secret_fields(&all), "{all}");
    let (status, traders) = app.get(&admin, "/api/users?role=trader").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = traders
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(traders
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["trader_id"].is_string()));
    let (_, one) = app.get(&admin, "/api/users?limit=1").await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let (status, body) = app
        .get(&admin, &format!("/api/users/{}", merchant.user_id))
        .await;
    assert_eq!(
        (status, body["merchant_id"].as_str()),
        (200, merchant.merchant_id.map(|m| m.to_string()).as_deref())
    );

    // Scope own: only himself.
    let (_, list) = app.get(&own, "/api/users").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        app.get(&own, &format!("/api/users/{}", own.user_id))
            .await
            .0,
        200
    );
    assert_eq!(
        app.get(&own, &format!("/api/users/{}", admin.user_id))
            .await
            .0,
        404
    );
    // Scope team: himself and his traders, not another trader.
    let (_, list) = app.get(&lead, "/api/users").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(
        app.get(&lead, &format!("/api/users/{}", member.user_id))
            .await
            .0,
        200
    );
    assert_eq!(
        app.get(&lead, &format!("/api/users/{}", outsider.user_id))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&lead, &format!("/api/users/{}", Uuid::new_v4()))
            .await
            .0,
        404
    );
    // Traders and merchants have no access; nobody without a token.
    for who in [&member, &merchant] {
        assert_eq!(app.get(who, "/api/users").await.0, 403);
        assert_eq!(
            app.get(who, &format!("/api/users/{}", who.user_id)).await.0,
            403
        );
    }
    assert_eq!(app.call(Method::GET, "/api/users", None, None).await.0, 401);
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/api/users/{}", admin.user_id),
            None,
            None
        )
        .await
        .0,
        401
    );
    // Bad filters.
    for query in [
        "role=root",
        "limit=0",
        "limit=-5",
        "limit=100000",
        "limit=abc",
        "colour=red",
    ] {
        let (status, body) = app.get(&admin, &format!("/api/users?{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert!(
            matches!(code(&body), Some("validation_failed" | "invalid_query")),
            "{query}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_revokes_existing_tokens_at_once() {
    let app = AdminApp::start_with_relay(false).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let victim = app.person(Role::Support, &["orders:read:*"]).await;
    let lead = app.person(Role::TeamLead, &["users:update:team"]).await;
    let member = app.person(Role::Trader, &[]).await;
    let outsider = app.person(Role::Trader, &[]).await;
    let reader = app.person(Role::Support, &["users:read:*"]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    app.join_team(&member, lead.team_id.unwrap()).await;
    let block = |who: &Person| format!("/api/users/{}/block", who.user_id);
    let unblock = |who: &Person| format!("/api/users/{}/unblock", who.user_id);

    assert_eq!(
        app.call(Method::GET, "/api/me", Some(&victim.token), None)
            .await
            .0,
        200
    );
    let (status, body) = app
        .post(
            &admin,
            &block(&victim),
            json!({"reason": "left the company"}),
        )
        .await;
    assert_eq!(
        (status, body["is_blocked"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(body["blocked_reason"], "left the company");
    assert!(body["blocked_at"].is_string());
    let (status, body) = app
        .call(Method::GET, "/api/me", Some(&victim.token), None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (401, Some("unauthenticated")),
        "the old token stops at once"
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/auth/support/login",
            None,
            Some(json!({"login": victim.login, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 401, "a blocked user cannot log in");
    let version: i32 = sqlx::query_scalar("SELECT token_version FROM users WHERE id = $1")
        .bind(victim.user_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(version, 1);
    assert_eq!(
        audit_rows(&app, "user.block", &victim.user_id.to_string()).await,
        ["critical"]
    );
    let (status, body) = app
        .post(&admin, &block(&victim), json!({"reason": "again"}))
        .await;
    assert_eq!((status, code(&body)), (409, Some("already_blocked")));

    // Unblocking lets him log in again; the token from before the block stays dead.
    let (status, body) = app.post(&admin, &unblock(&victim), json!({})).await;
    assert_eq!(
        (status, body["is_blocked"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    assert_eq!(body["blocked_reason"], Value::Null);
    assert_eq!(
        app.call(Method::GET, "/api/me", Some(&victim.token), None)
            .await
            .0,
        401
    );
    let fresh = app.login(Role::Support, &victim.login, PASSWORD).await;
    assert_eq!(
        app.call(Method::GET, "/api/me", Some(&fresh), None).await.0,
        200
    );
    assert_eq!(
        audit_rows(&app, "user.unblock", &victim.user_id.to_string()).await,
        ["critical"]
    );
    let (status, body) = app.post(&admin, &unblock(&victim), json!({})).await;
    assert_eq!((status, code(&body)), (409, Some("not_blocked")));

    // A team lead blocks his own traders only.
    let (status, _) = app
        .post(&lead, &block(&outsider), json!({"reason": "fraud"}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(&lead, &block(&member), json!({"reason": "fraud"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.call(Method::GET, "/api/me", Some(&member.token), None)
            .await
            .0,
        401
    );

    // Nobody blocks himself; others need users:update; a token is required.
    let (status, body) = app
        .post(&admin, &block(&admin), json!({"reason": "oops"}))
        .await;
    assert_eq!((status, code(&body)), (409, Some("cannot_modify_self")));
    for who in [&reader, &outsider, &merchant] {
        let (status, _) = app
            .post(who, &block(&admin), json!({"reason": "coup"}))
            .await;
        assert_eq!(status, 403, "{:?}", who.role);
        assert_eq!(app.post(who, &unblock(&member), json!({})).await.0, 403);
    }
    assert_eq!(
        app.call(
            Method::POST,
            &block(&admin),
            None,
            Some(json!({"reason": "x"}))
        )
        .await
        .0,
        401
    );
    assert_eq!(
        app.call(Method::POST, &unblock(&member), None, Some(json!({})))
            .await
            .0,
        401
    );
    // A reason is required; unknown fields are refused.
    let audits = app.count("audit_log").await;
    for (body, expected) in [
        (json!({}), "invalid_body"),
        (json!({"reason": ""}), "validation_failed"),
        (json!({"reason": "x", "until": "never"}), "invalid_body"),
    ] {
        let (status, answer) = app.post(&admin, &block(&outsider), body).await;
        assert_eq!((status, code(&answer)), (422, Some(expected)), "{answer}");
    }
    assert_eq!(app.count("audit_log").await, audits);
    assert_eq!(
        app.count("users WHERE is_blocked").await,
        1,
        "only the team member"
    );
    // A support who may update users still cannot block an admin.
    let hr = app.person(Role::Support, &["users:*:*"]).await;
    let (status, body) = app
        .post(&hr, &block(&admin), json!({"reason": "coup"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("exceeds_caller_permissions"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_permissions_are_changed_by_their_betters_only() {
    let app = AdminApp::start_with_relay(false).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let support = app.person(Role::Support, &[]).await;
    let hr = app
        .person(Role::Support, &["users:*:*", "orders:read:*"])
        .await;
    let reader = app.person(Role::Support, &["users:read:*"]).await;
    let trader = app.person(Role::Trader, &[]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let path = |who: &Person| format!("/api/users/{}/permissions", who.user_id);

    assert_eq!(app.get(&support, "/api/users").await.0, 403);
    let (status, body) = app
        .put(
            &admin,
            &path(&support),
            json!({"granted_permissions": ["users:read:*"], "role_description": "auditor"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["granted_permissions"], json!(["users:read:*"]));
    assert_eq!(body["role_description"], "auditor");
    assert_eq!(
        app.get(&support, "/api/users").await.0,
        200,
        "the same token gets the new permission"
    );
    assert_eq!(
        audit_rows(&app, "user.permissions", &support.user_id.to_string()).await,
        ["critical"]
    );
    // Absent description is kept; null clears it.
    let (_, body) = app
        .put(
            &admin,
            &path(&support),
            json!({"granted_permissions": ["users:read:own"]}),
        )
        .await;
    assert_eq!(body["role_description"], "auditor");
    let (_, body) = app
        .put(
            &admin,
            &path(&support),
            json!({"granted_permissions": [], "role_description": null}),
        )
        .await;
    assert_eq!(
        (
            body["granted_permissions"].clone(),
            body["role_description"].clone()
        ),
        (json!([]), Value::Null)
    );
    assert_eq!(app.get(&support, "/api/users").await.0, 403);

    let audits = app.count("audit_log").await;
    let cases: Vec<(&Person, String, Value, u16, &str)> = vec![
        (
            &admin,
            path(&support),
            json!({"granted_permissions": ["orders:read"]}),
            422,
            "invalid_permission",
        ),
        (
            &admin,
            path(&support),
            json!({"granted_permissions": ["orders:read:*", "x:y:z"]}),
            422,
            "invalid_permission",
        ),
        (
            &admin,
            path(&support),
            json!({"granted_permissions": "orders:read:*"}),
            422,
            "invalid_body",
        ),
        (
            &admin,
            path(&support),
            json!({"granted_permissions": [], "colour": 1}),
            422,
            "invalid_body",
        ),
        (
            &admin,
            path(&support),
            json!({"granted_permissions": [], "role_description": " "}),
            422,
            "validation_failed",
        ),
        (
            &admin,
            path(&trader),
            json!({"granted_permissions": ["orders:read:*"]}),
            422,
            "not_staff",
        ),
        (
            &admin,
            path(&admin),
            json!({"granted_permissions": []}),
            409,
            "cannot_modify_self",
        ),
        (
            &admin,
            format!("/api/users/{}/permissions", Uuid::new_v4()),
            json!({"granted_permissions": []}),
            404,
            "not_found",
        ),
        // hr may manage users but grants only what he holds, and never touches an admin.
        (
            &hr,
            path(&support),
            json!({"granted_permissions": ["*:*:*"]}),
            403,
            "exceeds_caller_permissions",
        ),
        (
            &hr,
            path(&admin),
            json!({"granted_permissions": ["orders:read:*"]}),
            403,
            "exceeds_caller_permissions",
        ),
        (
            &reader,
            path(&support),
            json!({"granted_permissions": []}),
            403,
            "forbidden",
        ),
        (
            &trader,
            path(&support),
            json!({"granted_permissions": []}),
            403,
            "forbidden",
        ),
        (
            &merchant,
            path(&support),
            json!({"granted_permissions": []}),
            403,
            "forbidden",
        ),
    ];
    for (who, path, body, status, expected) in cases {
        let (got, answer) = app.put(who, &path, body.clone()).await;
        assert_eq!(
            (got, code(&answer)),
            (status, Some(expected)),
            "{:?} {path} {body}: {answer}",
            who.role
        );
    }
    let (status, _) = app
        .call(
            Method::PUT,
            &path(&support),
            None,
            Some(json!({"granted_permissions": []})),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(app.count("audit_log").await, audits);
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT granted_permissions FROM staff_profiles WHERE user_id = $1")
            .bind(support.user_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(stored.is_empty(), "nothing was written: {stored:?}");
    let (status, body) = app
        .put(
            &hr,
            &path(&support),
            json!({"granted_permissions": ["orders:read:team"]}),
        )
        .await;
    assert_eq!(
        (status, body["granted_permissions"].clone()),
        (200, json!(["orders:read:team"]))
    );
    app.stop().await;
}
