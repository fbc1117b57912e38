//! Login per role and token checks: a valid token works; expired, wrong audience, wrong
//! issuer, `alg: none`, another key, a tampered payload, a blocked user and a revoked token
//! version are all 401 — and so are wrong passwords, without revealing which logins exist.

use base64::Engine as _;
use jivapay_admin::auth::jwt::{Claims, JwtKeys};
use jivapay_admin::auth::Role;
use jivapay_tests::admin::{settings, AdminApp, JWT_SECRET, PASSWORD};
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn claims(person: &jivapay_tests::admin::Person) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: person.user_id,
        role: person.role,
        iss: "jivapay".into(),
        aud: "jivapay-api".into(),
        iat: now,
        exp: now + 600,
        ver: 0,
    }
}

fn sign(claims: &Claims, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn me(app: &AdminApp, token: &str) -> u16 {
    app.call(Method::GET, "/api/me", Some(token), None).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_logs_in_at_its_own_endpoint() {
    let app = AdminApp::start_with_relay(false).await;
    for role in Role::ALL {
        let person = app.person(role, &["orders:read:*"]).await;
        let (status, body) = app.get(&person, "/api/me").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["role"], role.as_str());
        assert_eq!(body["user_id"], person.user_id.to_string());
        // The same credentials at another role's endpoint are refused.
        let other = Role::ALL.into_iter().find(|r| *r != role).unwrap();
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/auth/{}/login", other.as_str()),
                None,
                Some(json!({"login": person.login, "password": PASSWORD})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthenticated"))
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_get_the_same_answer() {
    let app = AdminApp::start_with_relay(false).await;
    let trader = app.person(Role::Trader, &[]).await;
    let attempt = |login: String, password: &'static str| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/auth/trader/login",
                None,
                Some(json!({"login": login, "password": password})),
            )
            .await
        }
    };
    let wrong_password = attempt(trader.login.clone(), "not the password").await;
    let unknown_login = attempt("nobody-here".into(), "not the password").await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(wrong_password, unknown_login, "the answers must not differ");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/auth/root/login",
            None,
            Some(json!({"login": "x", "password": "y"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/auth/trader/login",
            None,
            Some(json!({"login": "x", "password": "y", "extra": 1})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_body"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let app = AdminApp::start_with_relay(false).await;
    let person = app.person(Role::Support, &["*:*:*"]).await;
    assert_eq!(me(&app, &person.token).await, 200);
    // A token we sign ourselves with the right key and claims works (the baseline).
    assert_eq!(me(&app, &sign(&claims(&person), JWT_SECRET)).await, 200);

    let mut expired = claims(&person);
    expired.iat -= 7200;
    expired.exp = chrono::Utc::now().timestamp() - 120; // beyond the 30 s leeway
    assert_eq!(me(&app, &sign(&expired, JWT_SECRET)).await, 401, "expired");

    let wrong_audience = Claims {
        aud: "someone-else".into(),
        ..claims(&person)
    };
    assert_eq!(
        me(&app, &sign(&wrong_audience, JWT_SECRET)).await,
        401,
        "audience"
    );

    let wrong_issuer = Claims {
        iss: "evil".into(),
        ..claims(&person)
    };
    assert_eq!(
        me(&app, &sign(&wrong_issuer, JWT_SECRET)).await,
        401,
        "issuer"
    );

    let other_key = sign(&claims(&person), "another-secret-another-secret-another-1");
    assert_eq!(me(&app, &other_key).await, 401, "another key");

    // alg: none, unsigned.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(serde_json::to_vec(&claims(&person)).unwrap());
    assert_eq!(
        me(&app, &format!("{header}.{payload}.")).await,
        401,
        "alg none"
    );

    // A valid token with its payload swapped for an admin's claims.
    let parts: Vec<&str> = person.token.split('.').collect();
    let mut forged = claims(&person);
    forged.role = Role::Admin;
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&forged).unwrap()),
        parts[2]
    );
    assert_eq!(me(&app, &tampered).await, 401, "tampered");

    // Missing claims (no aud) and garbage.
    let keys = JwtKeys::new(&settings().auth).unwrap();
    assert!(keys.verify("not.a.token").is_err());
    let no_aud = serde_json::json!({"sub": person.user_id, "role": "support", "iss": "jivapay", "iat": 0, "exp": chrono::Utc::now().timestamp() + 60, "ver": 0});
    let token = encode(
        &Header::default(),
        &no_aud,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(me(&app, &token).await, 401, "no audience");
    assert_eq!(
        app.call(Method::GET, "/api/me", None, None).await.0,
        401,
        "no token"
    );
    assert_eq!(me(&app, "").await, 401, "empty token");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_user_or_bumped_token_version_is_refused_at_once() {
    let app = AdminApp::start_with_relay(false).await;
    let person = app.person(Role::Merchant, &[]).await;
    assert_eq!(me(&app, &person.token).await, 200);
    sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = $1")
        .bind(person.user_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(me(&app, &person.token).await, 401, "revoked token version");
    let fresh = app.login(Role::Merchant, &person.login, PASSWORD).await;
    assert_eq!(me(&app, &fresh).await, 200);
    sqlx::query("UPDATE users SET is_blocked = true, blocked_at = now() WHERE id = $1")
        .bind(person.user_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(me(&app, &fresh).await, 401, "blocked");
    let (status, _) = app
        .call(
            Method::POST,
            "/api/auth/merchant/login",
            None,
            Some(json!({"login": person.login, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 401, "a blocked user cannot log in");
    app.stop().await;
}

/// Guessing one account's password is slowed to `rate_limits.logins_per_minute` attempts per
/// address and login; other logins are not held up, and the answer says when to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_rate_limited_per_login() {
    let app = AdminApp::start_with_relay(false).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let (status, body) = app
        .put(
            &admin,
            "/api/settings/rate_limits.logins_per_minute",
            json!({"value": 5}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The setting is read again at most every 5 s.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    // Logging the victim in (the harness does) takes one of his five.
    let victim = app.person(Role::Trader, &[]).await;
    let attempt = |login: String, password: &'static str| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(format!("{}/api/auth/trader/login", app.base))
                .json(&json!({"login": login, "password": password}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (
                status,
                body["error"]["code"].as_str().map(str::to_owned),
                retry_after,
            )
        }
    };
    let mut limited = None;
    for n in 0..10 {
        let (status, code, retry_after) = attempt(victim.login.clone(), "wrong-password").await;
        if status == 429 {
            assert_eq!(code.as_deref(), Some("rate_limited"));
            assert!(retry_after.is_some(), "Retry-After is set");
            limited = Some(n);
            break;
        }
        assert_eq!((status, code.as_deref()), (401, Some("unauthenticated")));
    }
    assert_eq!(
        limited,
        Some(4),
        "four wrong guesses answered, the fifth refused"
    );
    // Even the right password waits now; another login is not affected.
    let (status, _, _) = attempt(victim.login.clone(), PASSWORD).await;
    assert_eq!(status, 429);
    let other = app.person(Role::Trader, &[]).await;
    let (status, _, _) = attempt(other.login.clone(), "wrong-password").await;
    assert_eq!(status, 401);
    app.stop().await;
}
