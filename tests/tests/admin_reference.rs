//! Reference data, exchange rates, runtime settings and the audit log through the management
//! API: who may read and write each route, what input is refused (and that nothing is written
//! then), the audit row of every change, and the outbox records for the `rates` and `settings`
//! topics.

use jivapay_admin::auth::Role;
use jivapay_schemas::records::{Rate, Setting, SettingType};
use jivapay_schemas::SchemaRegistry;
use jivapay_tests::admin::{AdminApp, Person};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use uuid::Uuid;

/// Everyone a test needs: an editor per permission, staff without it, and the other roles.
struct Cast {
    admin: Person,
    /// Support with `reference:update:*`.
    editor: Person,
    /// Support with `rates:update:*`.
    rater: Person,
    /// Support with `settings:read:*` only.
    reader: Person,
    /// Support with an unrelated permission.
    plain: Person,
    lead: Person,
    trader: Person,
    merchant: Person,
}

impl Cast {
    async fn new(app: &AdminApp) -> Self {
        Self {
            admin: app.person(Role::Admin, &["*:*:*"]).await,
            editor: app.person(Role::Support, &["reference:update:*"]).await,
            rater: app.person(Role::Support, &["rates:update:*"]).await,
            reader: app.person(Role::Support, &["settings:read:*"]).await,
            plain: app.person(Role::Support, &["orders:read:*"]).await,
            lead: app.person(Role::TeamLead, &[]).await,
            trader: app.person(Role::Trader, &[]).await,
            merchant: app.person(Role::Merchant, &[]).await,
        }
    }

    /// Those who may not edit reference data: the rater, support without a write permission,
    /// and every non-staff role.
    fn not_editors(&self) -> [&Person; 5] {
        [
            &self.rater,
            &self.plain,
            &self.lead,
            &self.trader,
            &self.merchant,
        ]
    }

    /// Those who may not post rates: as [`Cast::not_editors`], with the editor instead.
    fn not_raters(&self) -> [&Person; 5] {
        [
            &self.editor,
            &self.plain,
            &self.lead,
            &self.trader,
            &self.merchant,
        ]
    }

    /// Everyone who is authenticated, of every role.
    fn everyone(&self) -> [&Person; 8] {
        [
            &self.admin,
            &self.editor,
            &self.rater,
            &self.reader,
            &self.plain,
            &self.lead,
            &self.trader,
            &self.merchant,
        ]
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// Rows of the tables a refused write must not touch.
async fn snapshot(app: &AdminApp, table: &str) -> [i64; 3] {
    [
        app.count(table).await,
        app.count("audit_log").await,
        app.count("outbox").await,
    ]
}

/// Each of `people` gets 403 `forbidden`, and no token gets 401, with nothing written.
async fn refused(
    app: &AdminApp,
    people: &[&Person],
    method: Method,
    path: &str,
    body: Option<Value>,
    table: &str,
) {
    let before = snapshot(app, table).await;
    for who in people {
        let (status, answer) = app
            .call(method.clone(), path, Some(&who.token), body.clone())
            .await;
        assert_eq!(
            (status, code(&answer)),
            (403, "forbidden"),
            "{method} {path} by {:?}: {answer}",
            who.role
        );
    }
    let (status, answer) = app.call(method.clone(), path, None, body.clone()).await;
    assert_eq!(
        (status, code(&answer)),
        (401, "unauthenticated"),
        "{method} {path} without a token: {answer}"
    );
    assert_eq!(snapshot(app, table).await, before, "{method} {path} wrote");
}

/// Sends `who`'s request, expects `status` and `error_code`, and that nothing was written.
async fn rejected(
    app: &AdminApp,
    who: &Person,
    method: Method,
    path: &str,
    body: Value,
    table: &str,
    expected: (u16, &str),
) {
    let before = snapshot(app, table).await;
    let (status, answer) = app
        .call(method.clone(), path, Some(&who.token), Some(body.clone()))
        .await;
    assert_eq!(
        (status, code(&answer)),
        expected,
        "{method} {path} {body}: {answer}"
    );
    assert_eq!(
        snapshot(app, table).await,
        before,
        "{method} {path} {body} wrote"
    );
}

/// A body that is not JSON at all gets 400 `malformed_json`, and nothing is written.
async fn malformed(app: &AdminApp, who: &Person, method: Method, path: &str, table: &str) {
    let before = snapshot(app, table).await;
    let response = app
        .client
        .request(method.clone(), format!("{}{path}", app.base))
        .bearer_auth(&who.token)
        .header("content-type", "application/json")
        .body("{oops: 1")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (status, code(&answer)),
        (400, "malformed_json"),
        "{method} {path}: {answer}"
    );
    assert_eq!(snapshot(app, table).await, before);
}

/// The newest audit row of an entity: (action, level, actor, before, after).
async fn last_audit(
    app: &AdminApp,
    entity_type: &str,
    entity_id: &str,
) -> (String, String, Option<Uuid>, Option<Value>, Option<Value>) {
    sqlx::query_as(
        "SELECT action, level, actor_user_id, before, after FROM audit_log
         WHERE entity_type = $1 AND entity_id = $2 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(entity_type)
    .bind(entity_id)
    .fetch_optional(&app.db.pool)
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("no audit row for {entity_type} {entity_id}"))
}

/// The newest outbox value of a topic and key.
async fn outbox_value(app: &AdminApp, topic: &str, key: &str) -> Vec<u8> {
    sqlx::query_scalar(
        "SELECT value FROM outbox WHERE topic = $1 AND key = $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(topic)
    .bind(key)
    .fetch_optional(&app.db.pool)
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("no outbox row for {topic} {key}"))
}

fn codes(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_data_is_readable_by_every_role() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    for who in cast.everyone() {
        let (status, body) = app.get(who, "/api/reference/countries").await;
        assert_eq!(status, 200, "{:?}: {body}", who.role);
        assert_eq!(codes(&body, "code"), ["KG", "KZ", "RU", "UZ"]);
        let (status, body) = app.get(who, "/api/reference/currencies").await;
        assert_eq!(status, 200, "{body}");
        // Fiat only: USDT is not a reference currency one can pick.
        assert_eq!(codes(&body, "code"), ["KGS", "KZT", "RUB", "UZS"]);
        assert_eq!(body[2]["scale"], 2);
        assert_eq!(body[2]["country_code"], "RU");
        let (status, body) = app.get(who, "/api/reference/payment-methods").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(codes(&body, "code"), ["sbp", "card2card", "account"]);
        assert_eq!(body[0]["requisite_kind"], "phone");
        let (status, body) = app.get(who, "/api/reference/pools").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.as_array().unwrap().len(), 7);
        let (status, body) = app.get(who, "/api/reference/banks").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.as_array().unwrap().len(), 10);
        let (status, body) = app.get(who, "/api/rates").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(codes(&body, "fiat_currency"), ["KGS", "KZT", "RUB", "UZS"]);
        assert_eq!(dec(body[2]["rate"].as_str().unwrap()), dec("92.50"));
        let (status, body) = app.get(who, "/api/rates/RUB/history").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.as_array().unwrap().len(), 1);
    }
    for path in [
        "/api/reference/countries",
        "/api/reference/currencies",
        "/api/reference/payment-methods",
        "/api/reference/pools",
        "/api/reference/banks",
        "/api/rates",
        "/api/rates/RUB/history",
    ] {
        let (status, body) = app.call(Method::GET, path, None, None).await;
        assert_eq!((status, code(&body)), (401, "unauthenticated"), "{path}");
        let (status, body) = app.call(Method::GET, path, Some("not-a-token"), None).await;
        assert_eq!((status, code(&body)), (401, "unauthenticated"), "{path}");
    }

    // Filters.
    let who = &cast.trader;
    let (_, body) = app.get(who, "/api/reference/banks?country_code=KZ").await;
    assert_eq!(codes(&body, "code"), ["halyk", "kaspi"]);
    let (_, body) = app.get(who, "/api/reference/pools?fiat_currency=RUB").await;
    assert_eq!(
        codes(&body, "payment_method"),
        ["account", "card2card", "sbp"]
    );
    let (_, body) = app
        .get(
            who,
            "/api/reference/pools?payment_method=card2card&active=true",
        )
        .await;
    assert_eq!(codes(&body, "fiat_currency"), ["KGS", "KZT", "RUB", "UZS"]);
    let (_, body) = app.get(who, "/api/reference/countries?active=false").await;
    assert_eq!(body, json!([]));

    // Unknown or malformed parameters are refused, not ignored.
    for path in [
        "/api/reference/countries?sort=name",
        "/api/reference/countries?active=maybe",
        "/api/reference/banks?country=KZ",
        "/api/reference/pools?fiat=RUB",
        "/api/rates/RUB/history?from=yesterday",
        "/api/rates/RUB/history?limit=many",
        "/api/rates/RUB/history?since=2020-01-01T00:00:00Z",
    ] {
        let (status, body) = app.get(who, path).await;
        assert_eq!(
            (status, code(&body)),
            (400, "invalid_query"),
            "{path}: {body}"
        );
    }
    for path in [
        "/api/rates/RUB/history?limit=0",
        "/api/rates/RUB/history?limit=1001",
        "/api/rates/RUB/history?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
    ] {
        let (status, body) = app.get(who, path).await;
        assert_eq!(
            (status, code(&body)),
            (422, "validation_failed"),
            "{path}: {body}"
        );
    }
    for path in ["/api/rates/ZZZ/history", "/api/rates/USDT/history"] {
        let (status, body) = app.get(who, path).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countries_are_created_and_updated_by_reference_editors() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    let outsiders = cast.not_editors();
    let path = "/api/reference/countries";
    let armenia = json!({"code": "AM", "name": "Armenia"});
    refused(
        &app,
        &outsiders,
        Method::POST,
        path,
        Some(armenia.clone()),
        "countries",
    )
    .await;

    for (body, expected) in [
        (
            json!({"code": "am", "name": "Armenia"}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "ARM", "name": "Armenia"}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "A1", "name": "Armenia"}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "AM", "name": "  "}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "AM", "name": "x".repeat(129)}),
            (422, "validation_failed"),
        ),
        (json!({"code": "AM"}), (422, "invalid_body")),
        (
            json!({"code": "AM", "name": "Armenia", "is_eu": false}),
            (422, "invalid_body"),
        ),
        (json!({"code": 7, "name": "Armenia"}), (422, "invalid_body")),
        (
            json!({"code": "RU", "name": "Russia again"}),
            (409, "conflict"),
        ),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::POST,
            path,
            body,
            "countries",
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::POST, path, "countries").await;

    let (status, body) = app.post(&cast.editor, path, armenia).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["code"].as_str(), body["is_active"].as_bool()),
        (Some("AM"), Some(true))
    );
    let (action, level, actor, before, after) = last_audit(&app, "country", "AM").await;
    assert_eq!(
        (action.as_str(), level.as_str()),
        ("country.create", "info")
    );
    assert_eq!(actor, Some(cast.editor.user_id));
    assert_eq!(
        (before, after.unwrap()["name"].clone()),
        (None, json!("Armenia"))
    );

    let item = "/api/reference/countries/AM";
    refused(
        &app,
        &outsiders,
        Method::PATCH,
        item,
        Some(json!({"is_active": false})),
        "countries",
    )
    .await;
    for (body, expected) in [
        (json!({"name": ""}), (422, "validation_failed")),
        (json!({"code": "AR"}), (422, "invalid_body")),
        (json!({"is_active": "no"}), (422, "invalid_body")),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            item,
            body,
            "countries",
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::PATCH, item, "countries").await;
    for missing in ["/api/reference/countries/ZZ", "/api/reference/countries/am"] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            missing,
            json!({"name": "Nowhere"}),
            "countries",
            (404, "not_found"),
        )
        .await;
    }

    let (status, body) = app
        .patch(&cast.editor, item, json!({"name": "Republic of Armenia"}))
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("Republic of Armenia")),
        "{body}"
    );
    let (action, level, _, before, after) = last_audit(&app, "country", "AM").await;
    assert_eq!(
        (action.as_str(), level.as_str()),
        ("country.update", "info")
    );
    assert_eq!(before.unwrap()["name"], "Armenia");
    assert_eq!(after.unwrap()["name"], "Republic of Armenia");

    // A deactivation is a warning; the country is then gone from the active list and cannot
    // be referred to by new banks or currencies.
    let (status, body) = app
        .patch(&cast.admin, item, json!({"is_active": false}))
        .await;
    assert_eq!(
        (status, body["is_active"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let (_, level, actor, _, _) = last_audit(&app, "country", "AM").await;
    assert_eq!(
        (level.as_str(), actor),
        ("warning", Some(cast.admin.user_id))
    );
    let (_, body) = app
        .get(&cast.trader, "/api/reference/countries?active=true")
        .await;
    assert!(!codes(&body, "code").contains(&"AM".to_owned()));
    rejected(
        &app,
        &cast.editor,
        Method::POST,
        "/api/reference/banks",
        json!({"country_code": "AM", "code": "ameriabank", "name": "Ameriabank"}),
        "banks",
        (422, "unknown_country"),
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn currencies_are_fiat_and_refer_to_known_countries() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    let outsiders = cast.not_editors();
    let path = "/api/reference/currencies";
    let tenge2 = json!({"code": "AMD", "name": "Armenian dram", "scale": 2});
    refused(
        &app,
        &outsiders,
        Method::POST,
        path,
        Some(tenge2.clone()),
        "currencies",
    )
    .await;
    for (body, expected) in [
        (
            json!({"code": "amd", "name": "Dram", "scale": 2}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "AM", "name": "Dram", "scale": 2}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "AMDRAM", "name": "Dram", "scale": 2}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "AMD", "name": "Dram", "scale": 3}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "AMD", "name": "Dram", "scale": -1}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "AMD", "name": "Dram", "scale": 1e30}),
            (422, "invalid_body"),
        ),
        (
            json!({"code": "AMD", "name": "Dram"}),
            (422, "invalid_body"),
        ),
        (
            json!({"code": "AMD", "name": "Dram", "scale": 2, "kind": "crypto"}),
            (422, "invalid_body"),
        ),
        (
            json!({"code": "AMD", "name": "Dram", "scale": 2, "country_code": "AM"}),
            (422, "unknown_country"),
        ),
        (
            json!({"code": "RUB", "name": "Ruble", "scale": 2}),
            (409, "conflict"),
        ),
        (
            json!({"code": "USDT", "name": "Tether", "scale": 2}),
            (409, "conflict"),
        ),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::POST,
            path,
            body,
            "currencies",
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::POST, path, "currencies").await;

    let (status, body) = app.post(&cast.editor, path, tenge2).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["scale"].as_i64(), body["country_code"].clone()),
        (Some(2), Value::Null)
    );
    let (status, body) = app
        .post(
            &cast.editor,
            path,
            json!({"code": "KZX", "name": "Test tenge", "scale": 0, "country_code": "KZ"}),
        )
        .await;
    assert_eq!(
        (status, body["country_code"].as_str()),
        (201, Some("KZ")),
        "{body}"
    );
    let (action, _, actor, _, after) = last_audit(&app, "currency", "KZX").await;
    assert_eq!(
        (action.as_str(), actor),
        ("currency.create", Some(cast.editor.user_id))
    );
    assert_eq!(after.unwrap()["scale"], 0);
    let kind: String = sqlx::query_scalar("SELECT kind FROM currencies WHERE code = 'KZX'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(kind, "fiat");

    let item = "/api/reference/currencies/AMD";
    refused(
        &app,
        &outsiders,
        Method::PATCH,
        item,
        Some(json!({"name": "Dram"})),
        "currencies",
    )
    .await;
    for (body, expected) in [
        (json!({"name": ""}), (422, "validation_failed")),
        (json!({"scale": 0}), (422, "invalid_body")),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            item,
            body,
            "currencies",
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::PATCH, item, "currencies").await;
    for missing in [
        "/api/reference/currencies/USDT",
        "/api/reference/currencies/XYZ",
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            missing,
            json!({"is_active": false}),
            "currencies",
            (404, "not_found"),
        )
        .await;
    }
    let (status, body) = app
        .patch(&cast.editor, item, json!({"is_active": false}))
        .await;
    assert_eq!(
        (status, body["is_active"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let (action, level, _, before, _) = last_audit(&app, "currency", "AMD").await;
    assert_eq!(
        (action.as_str(), level.as_str()),
        ("currency.update", "warning")
    );
    assert_eq!(before.unwrap()["is_active"], true);
    // An inactive currency can no longer get a pool or a rate.
    rejected(
        &app,
        &cast.editor,
        Method::POST,
        "/api/reference/pools",
        json!({"payment_method": "sbp", "fiat_currency": "AMD"}),
        "payment_method_currencies",
        (422, "unknown_currency"),
    )
    .await;
    rejected(
        &app,
        &cast.admin,
        Method::POST,
        "/api/rates",
        json!({"fiat_currency": "AMD", "rate": "400"}),
        "exchange_rates",
        (422, "unknown_currency"),
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_methods_are_created_and_updated_by_reference_editors() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    let outsiders = cast.not_editors();
    let path = "/api/reference/payment-methods";
    let qr = json!({"code": "qr_pay", "name": "QR payment", "requisite_kind": "phone"});
    refused(
        &app,
        &outsiders,
        Method::POST,
        path,
        Some(qr.clone()),
        "payment_methods",
    )
    .await;
    for (body, expected) in [
        (
            json!({"code": "QR", "name": "QR", "requisite_kind": "phone"}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "q", "name": "QR", "requisite_kind": "phone"}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "2qr", "name": "QR", "requisite_kind": "phone"}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "qr-pay", "name": "QR", "requisite_kind": "phone"}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "qr_pay", "name": "QR", "requisite_kind": "iban"}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "qr_pay", "name": "QR", "requisite_kind": "phone", "sort_order": -1}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "qr_pay", "name": "QR", "requisite_kind": "phone", "sort_order": 99999999}),
            (422, "validation_failed"),
        ),
        (
            json!({"code": "qr_pay", "name": "QR"}),
            (422, "invalid_body"),
        ),
        (
            json!({"code": "qr_pay", "name": "QR", "requisite_kind": "phone", "fee": 1}),
            (422, "invalid_body"),
        ),
        (
            json!({"code": "sbp", "name": "SBP again", "requisite_kind": "phone"}),
            (409, "conflict"),
        ),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::POST,
            path,
            body,
            "payment_methods",
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::POST, path, "payment_methods").await;

    let (status, body) = app.post(&cast.editor, path, qr).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["requisite_kind"].as_str(), body["sort_order"].as_i64()),
        (Some("phone"), Some(0))
    );
    let (action, level, actor, _, _) = last_audit(&app, "payment_method", "qr_pay").await;
    assert_eq!(
        (action.as_str(), level.as_str(), actor),
        ("payment_method.create", "info", Some(cast.editor.user_id))
    );

    let item = "/api/reference/payment-methods/qr_pay";
    refused(
        &app,
        &outsiders,
        Method::PATCH,
        item,
        Some(json!({"sort_order": 9})),
        "payment_methods",
    )
    .await;
    for (body, expected) in [
        (
            json!({"requisite_kind": "iban"}),
            (422, "validation_failed"),
        ),
        (json!({"sort_order": -5}), (422, "validation_failed")),
        (json!({"name": ""}), (422, "validation_failed")),
        (json!({"code": "qr"}), (422, "invalid_body")),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            item,
            body,
            "payment_methods",
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::PATCH, item, "payment_methods").await;
    rejected(
        &app,
        &cast.editor,
        Method::PATCH,
        "/api/reference/payment-methods/nope",
        json!({"sort_order": 1}),
        "payment_methods",
        (404, "not_found"),
    )
    .await;
    let (status, body) = app
        .patch(
            &cast.editor,
            item,
            json!({"sort_order": 9, "requisite_kind": "card"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["sort_order"].as_i64(), body["requisite_kind"].as_str()),
        (Some(9), Some("card"))
    );
    let (action, _, _, before, after) = last_audit(&app, "payment_method", "qr_pay").await;
    assert_eq!(action, "payment_method.update");
    assert_eq!(
        (
            before.unwrap()["sort_order"].clone(),
            after.unwrap()["sort_order"].clone()
        ),
        (json!(0), json!(9))
    );
    let (_, body) = app
        .get(&cast.merchant, "/api/reference/payment-methods")
        .await;
    assert_eq!(
        codes(&body, "code"),
        ["sbp", "card2card", "account", "qr_pay"]
    );

    // An inactive method can no longer get a pool.
    let (status, _) = app
        .patch(&cast.editor, item, json!({"is_active": false}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        last_audit(&app, "payment_method", "qr_pay").await.1,
        "warning"
    );
    rejected(
        &app,
        &cast.editor,
        Method::POST,
        "/api/reference/pools",
        json!({"payment_method": "qr_pay", "fiat_currency": "RUB"}),
        "payment_method_currencies",
        (422, "unknown_payment_method"),
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_refer_to_known_methods_and_currencies() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    let outsiders = cast.not_editors();
    let path = "/api/reference/pools";
    let table = "payment_method_currencies";
    let pool = json!({"payment_method": "sbp", "fiat_currency": "KZT", "min_amount": "100", "max_amount": "500000"});
    refused(
        &app,
        &outsiders,
        Method::POST,
        path,
        Some(pool.clone()),
        table,
    )
    .await;
    for (body, expected) in [
        (
            json!({"payment_method": "nope", "fiat_currency": "KZT"}),
            (422, "unknown_payment_method"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "ZZZ"}),
            (422, "unknown_currency"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "USDT"}),
            (422, "unknown_currency"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "KZT", "min_amount": "500", "max_amount": "100"}),
            (422, "validation_failed"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "KZT", "min_amount": "-1"}),
            (422, "validation_failed"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "KZT", "min_amount": "0"}),
            (422, "validation_failed"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "KZT", "max_amount": "1000000000000"}),
            (422, "validation_failed"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "KZT", "max_amount": "10.001"}),
            (422, "validation_failed"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "KZT", "max_amount": "ten"}),
            (422, "invalid_body"),
        ),
        (json!({"payment_method": "sbp"}), (422, "invalid_body")),
        (
            json!({"payment_method": "sbp", "fiat_currency": "KZT", "direction": "pay_in"}),
            (422, "invalid_body"),
        ),
        (
            json!({"payment_method": "sbp", "fiat_currency": "RUB"}),
            (409, "conflict"),
        ),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::POST,
            path,
            body,
            table,
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::POST, path, table).await;

    let (status, body) = app.post(&cast.editor, path, pool).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(dec(body["min_amount"].as_str().unwrap()), dec("100"));
    assert_eq!(dec(body["max_amount"].as_str().unwrap()), dec("500000"));
    let (action, level, actor, _, _) = last_audit(&app, "pool", "KZT:sbp").await;
    assert_eq!(
        (action.as_str(), level.as_str(), actor),
        ("pool.create", "info", Some(cast.editor.user_id))
    );

    let item = "/api/reference/pools/sbp/KZT";
    refused(
        &app,
        &outsiders,
        Method::PATCH,
        item,
        Some(json!({"is_active": false})),
        table,
    )
    .await;
    for (body, expected) in [
        (json!({"min_amount": "600000"}), (422, "validation_failed")),
        (json!({"max_amount": "0"}), (422, "validation_failed")),
        (
            json!({"max_amount": "2000000000"}),
            (422, "validation_failed"),
        ),
        (json!({"fiat_currency": "RUB"}), (422, "invalid_body")),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            item,
            body,
            table,
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::PATCH, item, table).await;
    for missing in [
        "/api/reference/pools/sbp/UZS",
        "/api/reference/pools/nope/RUB",
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            missing,
            json!({"is_active": false}),
            table,
            (404, "not_found"),
        )
        .await;
    }
    // `null` clears a bound; an absent field keeps it.
    let (status, body) = app
        .patch(&cast.editor, item, json!({"max_amount": null}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["max_amount"].clone(),
            dec(body["min_amount"].as_str().unwrap())
        ),
        (Value::Null, dec("100"))
    );
    let (action, _, _, before, after) = last_audit(&app, "pool", "KZT:sbp").await;
    assert_eq!(action, "pool.update");
    assert_eq!(
        dec(before.unwrap()["max_amount"].as_str().unwrap()),
        dec("500000")
    );
    assert_eq!(after.unwrap()["max_amount"], Value::Null);
    let (status, body) = app
        .patch(
            &cast.editor,
            item,
            json!({"min_amount": "600000", "is_active": false}),
        )
        .await;
    assert_eq!(
        (status, body["is_active"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    assert_eq!(last_audit(&app, "pool", "KZT:sbp").await.1, "warning");
    let (_, body) = app
        .get(
            &cast.lead,
            "/api/reference/pools?fiat_currency=KZT&active=false",
        )
        .await;
    assert_eq!(codes(&body, "payment_method"), ["sbp"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banks_belong_to_known_countries() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    let outsiders = cast.not_editors();
    let path = "/api/reference/banks";
    let jusan = json!({"country_code": "KZ", "code": "jusan", "name": "Jusan Bank"});
    refused(
        &app,
        &outsiders,
        Method::POST,
        path,
        Some(jusan.clone()),
        "banks",
    )
    .await;
    for (body, expected) in [
        (
            json!({"country_code": "ZZ", "code": "jusan", "name": "Jusan"}),
            (422, "unknown_country"),
        ),
        (
            json!({"country_code": "kz", "code": "jusan", "name": "Jusan"}),
            (422, "unknown_country"),
        ),
        (
            json!({"country_code": "KZ", "code": "Jusan", "name": "Jusan"}),
            (422, "validation_failed"),
        ),
        (
            json!({"country_code": "KZ", "code": "", "name": "Jusan"}),
            (422, "validation_failed"),
        ),
        (
            json!({"country_code": "KZ", "code": "-jusan", "name": "Jusan"}),
            (422, "validation_failed"),
        ),
        (
            json!({"country_code": "KZ", "code": "jusan", "name": "\u{7}"}),
            (422, "validation_failed"),
        ),
        (
            json!({"country_code": "KZ", "code": "jusan"}),
            (422, "invalid_body"),
        ),
        (
            json!({"country_code": "KZ", "code": "jusan", "name": "Jusan", "bic": "X"}),
            (422, "invalid_body"),
        ),
        (
            json!({"country_code": "KZ", "code": "kaspi", "name": "Kaspi again"}),
            (409, "conflict"),
        ),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::POST,
            path,
            body,
            "banks",
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::POST, path, "banks").await;

    let (status, body) = app.post(&cast.editor, path, jusan).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (action, level, actor, _, after) = last_audit(&app, "bank", &id).await;
    assert_eq!(
        (action.as_str(), level.as_str(), actor),
        ("bank.create", "info", Some(cast.editor.user_id))
    );
    assert_eq!(after.unwrap()["code"], "jusan");
    // The same code in another country is another bank.
    let (status, body) = app
        .post(
            &cast.editor,
            path,
            json!({"country_code": "UZ", "code": "kaspi", "name": "Kaspi UZ"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let item = format!("/api/reference/banks/{id}");
    refused(
        &app,
        &outsiders,
        Method::PATCH,
        &item,
        Some(json!({"is_active": false})),
        "banks",
    )
    .await;
    for (body, expected) in [
        (json!({"name": ""}), (422, "validation_failed")),
        (json!({"code": "other"}), (422, "invalid_body")),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            &item,
            body,
            "banks",
            expected,
        )
        .await;
    }
    malformed(&app, &cast.editor, Method::PATCH, &item, "banks").await;
    for missing in [
        format!("/api/reference/banks/{}", Uuid::new_v4()),
        "/api/reference/banks/not-a-uuid".to_owned(),
    ] {
        rejected(
            &app,
            &cast.editor,
            Method::PATCH,
            &missing,
            json!({"name": "X"}),
            "banks",
            (404, "not_found"),
        )
        .await;
    }
    let (status, body) = app
        .patch(
            &cast.editor,
            &item,
            json!({"name": "Jusan", "is_active": false}),
        )
        .await;
    assert_eq!(
        (status, body["name"].as_str(), body["is_active"].as_bool()),
        (200, Some("Jusan"), Some(false)),
        "{body}"
    );
    let (action, level, _, before, _) = last_audit(&app, "bank", &id).await;
    assert_eq!(
        (action.as_str(), level.as_str()),
        ("bank.update", "warning")
    );
    assert_eq!(before.unwrap()["name"], "Jusan Bank");
    let (_, body) = app
        .get(
            &cast.trader,
            "/api/reference/banks?country_code=KZ&active=true",
        )
        .await;
    assert_eq!(codes(&body, "code"), ["halyk", "kaspi"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_rate_is_stored_audited_and_enqueued_for_the_rates_topic() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    // Reference editors do not set rates.
    let outsiders = cast.not_raters();
    let path = "/api/rates";
    let table = "exchange_rates";
    let rate = json!({"fiat_currency": "RUB", "rate": "93.12345678", "source": "bybit_p2p"});
    refused(
        &app,
        &outsiders,
        Method::POST,
        path,
        Some(rate.clone()),
        table,
    )
    .await;
    for (body, expected) in [
        (
            json!({"fiat_currency": "RUB", "rate": "0"}),
            (422, "validation_failed"),
        ),
        (
            json!({"fiat_currency": "RUB", "rate": "-92.5"}),
            (422, "validation_failed"),
        ),
        (
            json!({"fiat_currency": "RUB", "rate": "1000000000.01"}),
            (422, "validation_failed"),
        ),
        (
            json!({"fiat_currency": "RUB", "rate": "1000000000000"}),
            (422, "validation_failed"),
        ),
        (
            json!({"fiat_currency": "RUB", "rate": "92.123456789"}),
            (422, "validation_failed"),
        ),
        (
            json!({"fiat_currency": "RUB", "rate": "a lot"}),
            (422, "invalid_body"),
        ),
        (
            json!({"fiat_currency": "RUB", "rate": "92.5", "source": "Bybit P2P"}),
            (422, "validation_failed"),
        ),
        (
            json!({"fiat_currency": "RUB", "rate": "92.5", "source": ""}),
            (422, "validation_failed"),
        ),
        (
            json!({"fiat_currency": "ZZZ", "rate": "92.5"}),
            (422, "unknown_currency"),
        ),
        (
            json!({"fiat_currency": "USDT", "rate": "1"}),
            (422, "unknown_currency"),
        ),
        (
            json!({"fiat_currency": "rub", "rate": "92.5"}),
            (422, "unknown_currency"),
        ),
        (json!({"rate": "92.5"}), (422, "invalid_body")),
        (
            json!({"fiat_currency": "RUB", "rate": "92.5", "observed_at": 0}),
            (422, "invalid_body"),
        ),
    ] {
        rejected(&app, &cast.rater, Method::POST, path, body, table, expected).await;
    }
    malformed(&app, &cast.rater, Method::POST, path, table).await;

    let (status, body) = app.post(&cast.rater, path, rate).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(dec(body["rate"].as_str().unwrap()), dec("93.12345678"));
    assert_eq!(
        (body["source"].as_str(), body["crypto_currency"].as_str()),
        (Some("bybit_p2p"), Some("USDT"))
    );
    assert_eq!(
        body["created_by"].as_str(),
        Some(cast.rater.user_id.to_string().as_str())
    );

    // The outbox row decodes to the posted rate.
    let value = outbox_value(&app, "rates", "RUB").await;
    let record: Rate = SchemaRegistry::builtin().unwrap().decode(&value).unwrap();
    assert_eq!(record.fiat_currency, "RUB");
    assert_eq!(record.rate, dec("93.12345678"));
    assert_eq!(record.source, "bybit_p2p");
    let stored_millis: i64 = sqlx::query_scalar(
        "SELECT (extract(epoch FROM observed_at) * 1000)::bigint FROM exchange_rates WHERE id = $1",
    )
    .bind(Uuid::parse_str(body["id"].as_str().unwrap()).unwrap())
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(
        (record.observed_at - stored_millis).abs() <= 1,
        "{record:?} vs {stored_millis}"
    );
    let (action, level, actor, _, after) = last_audit(&app, "exchange_rate", "RUB").await;
    assert_eq!(
        (action.as_str(), level.as_str(), actor),
        ("exchange_rate.create", "info", Some(cast.rater.user_id))
    );
    assert_eq!(after.unwrap()["id"], body["id"]);

    // The default source is `manual`; the newest rate is the current one.
    let (status, body) = app
        .post(
            &cast.admin,
            path,
            json!({"fiat_currency": "RUB", "rate": "94.5"}),
        )
        .await;
    assert_eq!(
        (status, body["source"].as_str()),
        (201, Some("manual")),
        "{body}"
    );
    let (_, current) = app.get(&cast.merchant, "/api/rates").await;
    let rub = current
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["fiat_currency"] == "RUB")
        .unwrap();
    assert_eq!(dec(rub["rate"].as_str().unwrap()), dec("94.5"));
    assert_eq!(rub["id"], body["id"]);
    let (status, history) = app.get(&cast.trader, "/api/rates/RUB/history").await;
    assert_eq!(status, 200, "{history}");
    let rates: Vec<Decimal> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| dec(r["rate"].as_str().unwrap()))
        .collect();
    assert_eq!(rates, [dec("94.5"), dec("93.12345678"), dec("92.50")]);
    let (_, limited) = app
        .get(&cast.trader, "/api/rates/RUB/history?limit=1")
        .await;
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let newest = history[0]["observed_at"].as_str().unwrap();
    let (_, older) = app
        .get(&cast.trader, &format!("/api/rates/RUB/history?to={newest}"))
        .await;
    assert_eq!(older.as_array().unwrap().len(), 2, "{older}");
    let (_, newer) = app
        .get(
            &cast.trader,
            &format!("/api/rates/RUB/history?from={newest}"),
        )
        .await;
    assert_eq!(newer.as_array().unwrap().len(), 1, "{newer}");
    // Other currencies are untouched.
    let (_, kzt) = app.get(&cast.trader, "/api/rates/KZT/history").await;
    assert_eq!(kzt.as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_read_and_changed_with_their_permissions() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    let key = "orders.payment_window_secs";
    let item = format!("/api/settings/{key}");
    let table = "configuration_settings";

    // Reading.
    for who in [&cast.admin, &cast.reader] {
        let (status, body) = app.get(who, "/api/settings").await;
        assert_eq!(status, 200, "{body}");
        let keys = codes(&body, "key");
        for definition in jivapay_admin::settings_catalog::SETTINGS {
            assert!(
                keys.contains(&definition.key.to_owned()),
                "{} missing",
                definition.key
            );
        }
        let (status, body) = app.get(who, &item).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["value"].clone(), body["version"].as_i64()),
            (json!(900), Some(1))
        );
        assert_eq!(body["value_type"], "duration_seconds");
        let (status, body) = app.get(who, "/api/settings/orders.nothing").await;
        assert_eq!((status, code(&body)), (404, "unknown_setting"), "{body}");
    }
    let outsiders = cast.not_raters();
    refused(&app, &outsiders, Method::GET, "/api/settings", None, table).await;
    refused(&app, &outsiders, Method::GET, &item, None, table).await;
    // Reading is not writing.
    let mut writers_not = outsiders.to_vec();
    writers_not.push(&cast.reader);
    refused(
        &app,
        &writers_not,
        Method::PUT,
        &item,
        Some(json!({"value": 1200})),
        table,
    )
    .await;

    // Refused values write nothing: not the row, not the audit log, not the outbox.
    let unchanged = || async {
        let (_, body) = app.get(&cast.admin, &item).await;
        assert_eq!(
            (body["value"].clone(), body["version"].as_i64()),
            (json!(900), Some(1))
        );
    };
    for (path, body, expected) in [
        (
            item.as_str(),
            json!({"value": -5}),
            (422, "invalid_setting_value"),
        ),
        (
            item.as_str(),
            json!({"value": 0}),
            (422, "invalid_setting_value"),
        ),
        (
            item.as_str(),
            json!({"value": 10_000_000}),
            (422, "invalid_setting_value"),
        ),
        (
            item.as_str(),
            json!({"value": 900.5}),
            (422, "invalid_setting_value"),
        ),
        (
            item.as_str(),
            json!({"value": "900"}),
            (422, "invalid_setting_value"),
        ),
        (
            item.as_str(),
            json!({"value": null}),
            (422, "invalid_setting_value"),
        ),
        (item.as_str(), json!({}), (422, "invalid_body")),
        (
            item.as_str(),
            json!({"value": 1200, "key": key}),
            (422, "invalid_body"),
        ),
        (
            item.as_str(),
            json!({"value": 1200, "version": "one"}),
            (422, "invalid_body"),
        ),
        (
            "/api/settings/fraud.review_threshold",
            json!({"value": 100.5}),
            (422, "invalid_setting_value"),
        ),
        (
            "/api/settings/fraud.review_threshold",
            json!({"value": "100.001"}),
            (422, "invalid_setting_value"),
        ),
        (
            "/api/settings/fraud.review_threshold",
            json!({"value": "-1.00"}),
            (422, "invalid_setting_value"),
        ),
        // Review must start below denial.
        (
            "/api/settings/fraud.review_threshold",
            json!({"value": "2000000.00"}),
            (422, "invalid_setting_value"),
        ),
        (
            "/api/settings/fraud.deny_threshold",
            json!({"value": "1000.00"}),
            (422, "invalid_setting_value"),
        ),
        (
            "/api/settings/callbacks.retry_schedule_secs",
            json!({"value": [0, -5]}),
            (422, "invalid_setting_value"),
        ),
        (
            "/api/settings/callbacks.allow_private_addresses",
            json!({"value": "yes"}),
            (422, "invalid_setting_value"),
        ),
        (
            "/api/settings/orders.nothing",
            json!({"value": 1}),
            (404, "unknown_setting"),
        ),
        (
            "/api/settings/ORDERS.PAYMENT_WINDOW_SECS",
            json!({"value": 1200}),
            (404, "unknown_setting"),
        ),
    ] {
        rejected(&app, &cast.admin, Method::PUT, path, body, table, expected).await;
    }
    malformed(&app, &cast.admin, Method::PUT, &item, table).await;
    unchanged().await;
    rejected(
        &app,
        &cast.admin,
        Method::PUT,
        &item,
        json!({"value": 1200, "version": 7}),
        table,
        (409, "version_conflict"),
    )
    .await;
    unchanged().await;

    // A valid change: version + 1, who changed it, audited, and published.
    let outbox_before = app.count("outbox").await;
    let (status, body) = app
        .put(&cast.admin, &item, json!({"value": 1200, "version": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["value"].clone(), body["version"].as_i64()),
        (json!(1200), Some(2))
    );
    assert_eq!(
        body["updated_by"].as_str(),
        Some(cast.admin.user_id.to_string().as_str())
    );
    assert_eq!(app.count("outbox").await, outbox_before + 1);
    let record: Setting = SchemaRegistry::builtin()
        .unwrap()
        .decode(&outbox_value(&app, "settings", key).await)
        .unwrap();
    assert_eq!(
        (
            record.key.as_str(),
            record.value_type,
            record.value_json.as_str()
        ),
        (key, SettingType::DurationSecs, "1200")
    );
    let (action, level, actor, before, after) = last_audit(&app, "setting", key).await;
    assert_eq!(
        (action.as_str(), level.as_str(), actor),
        ("setting.update", "warning", Some(cast.admin.user_id))
    );
    assert_eq!(before.unwrap()["value"], 900);
    assert_eq!(after.unwrap()["value"], 1200);

    // The version the caller read is now stale.
    rejected(
        &app,
        &cast.admin,
        Method::PUT,
        &item,
        json!({"value": 1500, "version": 1}),
        table,
        (409, "version_conflict"),
    )
    .await;
    // A decimal setting takes a string and keeps it exact.
    let (status, body) = app
        .put(
            &cast.admin,
            "/api/settings/fraud.review_threshold",
            json!({"value": "250000.50"}),
        )
        .await;
    assert_eq!(
        (status, body["value"].as_str()),
        (200, Some("250000.50")),
        "{body}"
    );
    let record: Setting = SchemaRegistry::builtin()
        .unwrap()
        .decode(&outbox_value(&app, "settings", "fraud.review_threshold").await)
        .unwrap();
    assert_eq!(
        (record.value_type, record.value_json.as_str()),
        (SettingType::Decimal, "\"250000.50\"")
    );
    app.stop().await;
}

/// Rows of `GET /api/audit` as (action, entity_id).
fn rows(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["entity_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_filters_by_level_actor_entity_and_time() {
    let app = AdminApp::start_with_relay(false).await;
    let cast = Cast::new(&app).await;
    let auditor = app.person(Role::Support, &["audit:read:*"]).await;
    // A team lead who may read his own rows and edit reference data.
    let lead = app
        .person(Role::TeamLead, &["audit:read:own", "reference:update:*"])
        .await;

    // Real mutations, in this order.
    let ok = |(status, body): (u16, Value)| {
        assert!((200..300).contains(&status), "{body}");
        body
    };
    ok(app
        .post(
            &cast.editor,
            "/api/reference/countries",
            json!({"code": "AM", "name": "Armenia"}),
        )
        .await);
    ok(app
        .patch(
            &cast.editor,
            "/api/reference/countries/AM",
            json!({"is_active": false}),
        )
        .await);
    ok(app
        .post(
            &cast.rater,
            "/api/rates",
            json!({"fiat_currency": "KZT", "rate": "480.25"}),
        )
        .await);
    ok(app
        .put(
            &cast.admin,
            "/api/settings/orders.payment_window_secs",
            json!({"value": 1200}),
        )
        .await);
    let bank = ok(app
        .post(
            &lead,
            "/api/reference/banks",
            json!({"country_code": "KZ", "code": "jusan", "name": "Jusan"}),
        )
        .await);
    let bank_id = bank["id"].as_str().unwrap().to_owned();

    let get = |query: &'static str| {
        let auditor = &auditor;
        let app = &app;
        async move {
            let (status, body) = app.get(auditor, &format!("/api/audit{query}")).await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };
    // Newest first, everything.
    let all = get("").await;
    assert_eq!(
        rows(&all),
        [
            ("bank.create".to_owned(), bank_id.clone()),
            (
                "setting.update".to_owned(),
                "orders.payment_window_secs".to_owned()
            ),
            ("exchange_rate.create".to_owned(), "KZT".to_owned()),
            ("country.update".to_owned(), "AM".to_owned()),
            ("country.create".to_owned(), "AM".to_owned()),
        ]
    );
    assert_eq!(all[0]["actor_role"], "team_lead");
    assert_eq!(all[1]["before"]["value"], 900);
    // By level.
    let warnings = get("?level=warning").await;
    assert_eq!(
        rows(&warnings)
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["setting.update", "country.update"]
    );
    assert!(warnings
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["level"] == "warning"));
    assert_eq!(get("?min_level=warning").await, warnings);
    assert_eq!(get("?min_level=info").await, all);
    assert_eq!(get("?level=critical").await, json!([]));
    assert_eq!(get("?level=debug&min_level=info").await, json!([]));
    // By actor.
    let (status, body) = app
        .get(
            &auditor,
            &format!("/api/audit?actor_user_id={}", cast.editor.user_id),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        rows(&body).iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["country.update", "country.create"]
    );
    let (_, body) = app
        .get(
            &auditor,
            &format!("/api/audit?actor_user_id={}", Uuid::new_v4()),
        )
        .await;
    assert_eq!(body, json!([]));
    // By entity.
    let (_, body) = app
        .get(&auditor, "/api/audit?entity_type=country&entity_id=AM")
        .await;
    assert_eq!(rows(&body).len(), 2);
    let body = get("?entity_type=exchange_rate").await;
    assert_eq!(
        rows(&body),
        [("exchange_rate.create".to_owned(), "KZT".to_owned())]
    );
    let (_, body) = app
        .get(
            &auditor,
            &format!("/api/audit?entity_type=bank&entity_id={bank_id}"),
        )
        .await;
    assert_eq!(rows(&body).len(), 1);
    assert_eq!(get("?entity_type=country&entity_id=RU").await, json!([]));
    let body = get("?action=setting.update").await;
    assert_eq!(rows(&body).len(), 1);
    // By time: `from` is inclusive, `to` exclusive.
    let third = all[2]["created_at"].as_str().unwrap();
    let (_, body) = app.get(&auditor, &format!("/api/audit?from={third}")).await;
    assert_eq!(rows(&body), rows(&all)[..3]);
    let (_, body) = app.get(&auditor, &format!("/api/audit?to={third}")).await;
    assert_eq!(rows(&body), rows(&all)[3..]);
    let (_, body) = app
        .get(
            &auditor,
            &format!("/api/audit?from={third}&to={third}&level=info"),
        )
        .await;
    assert_eq!(body, json!([]));
    let body = get("?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z").await;
    assert_eq!(body, json!([]));
    // Limit.
    let body = get("?limit=2").await;
    assert_eq!(rows(&body), rows(&all)[..2]);

    // Malformed queries.
    for query in [
        "?verbosity=high",
        "?level=loud",
        "?level=WARNING",
        "?min_level=3",
        "?actor_user_id=someone",
        "?from=yesterday",
        "?to=2024-13-01T00:00:00Z",
        "?limit=ten",
        "?level=info&level=warning",
    ] {
        let (status, body) = app.get(&auditor, &format!("/api/audit{query}")).await;
        assert_eq!(
            (status, code(&body)),
            (400, "invalid_query"),
            "{query}: {body}"
        );
    }
    for query in [
        "?limit=0",
        "?limit=501",
        "?limit=-1",
        "?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
    ] {
        let (status, body) = app.get(&auditor, &format!("/api/audit{query}")).await;
        assert_eq!(
            (status, code(&body)),
            (422, "validation_failed"),
            "{query}: {body}"
        );
    }

    // Permissions: staff with `audit:read` only; `own` scope sees only the caller's rows.
    refused(
        &app,
        &[
            &cast.editor,
            &cast.plain,
            &cast.lead,
            &cast.trader,
            &cast.merchant,
        ],
        Method::GET,
        "/api/audit",
        None,
        "audit_log",
    )
    .await;
    let (status, body) = app.get(&cast.admin, "/api/audit").await;
    assert_eq!((status, rows(&body)), (200, rows(&all)));
    let (status, body) = app.get(&lead, "/api/audit").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body), [("bank.create".to_owned(), bank_id.clone())]);
    let (_, body) = app
        .get(
            &lead,
            &format!("/api/audit?actor_user_id={}", cast.editor.user_id),
        )
        .await;
    assert_eq!(body, json!([]), "another's rows are out of an own scope");
    app.stop().await;
}
