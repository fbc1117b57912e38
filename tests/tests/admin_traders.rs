//! Teams and traders through the management API: who may do what (allowed role, 403 without
//! the permission, 404 outside the caller's scope, 401 without a token), input checks that
//! write nothing, the audit row of every mutation, and the trader record each trader mutation
//! enqueues for the `traders` topic.

use jivapay_admin::auth::Role;
use jivapay_schemas::records::{Direction, Trader};
use jivapay_schemas::SchemaRegistry;
use jivapay_tests::admin::{AdminApp, Person};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use uuid::Uuid;

/// Sends a raw body (for malformed JSON); returns the status and the JSON body.
async fn raw(app: &AdminApp, method: Method, path: &str, who: &Person, body: &str) -> (u16, Value) {
    let response = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(&who.token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// A user with role `trader` who is not a trader yet.
async fn trader_user(app: &AdminApp) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO users (login, password_hash, role) VALUES ($1, 'x', 'trader') RETURNING id",
    )
    .bind(format!("new-trader-{}", Uuid::new_v4().simple()))
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

/// The levels of the audit rows with this action on this entity, oldest first.
async fn audit_levels(app: &AdminApp, action: &str, entity_id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT level FROM audit_log WHERE action = $1 AND entity_id = $2 ORDER BY created_at, id",
    )
    .bind(action)
    .bind(entity_id.to_string())
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

/// Outbox rows for the trader on topic `traders`.
async fn trader_records(app: &AdminApp, trader_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE topic = 'traders' AND key = $1")
        .bind(trader_id.to_string())
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// The newest record enqueued for the trader on topic `traders`, decoded.
async fn latest_record(app: &AdminApp, trader_id: Uuid) -> Trader {
    let bytes: Vec<u8> = sqlx::query_scalar(
        "SELECT value FROM outbox WHERE topic = 'traders' AND key = $1 AND NOT is_tombstone ORDER BY id DESC LIMIT 1",
    )
    .bind(trader_id.to_string())
    .fetch_one(&app.db.pool)
    .await
    .expect("a record for the trader was enqueued");
    SchemaRegistry::builtin()
        .unwrap()
        .decode::<Trader>(&bytes)
        .unwrap()
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// Writes nothing: the counts of the touched tables are unchanged.
async fn counts(app: &AdminApp) -> [i64; 5] {
    [
        app.count("teams").await,
        app.count("traders").await,
        app.count("trader_commissions").await,
        app.count("audit_log").await,
        app.count("outbox").await,
    ]
}

// ----------------------------------------------------------------------------------------------
// Teams
// ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_are_created_read_and_updated_within_scope() {
    let app = AdminApp::start().await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let lead = app
        .person(Role::TeamLead, &["teams:read:team", "teams:update:team"])
        .await;
    let other_lead = app.person(Role::TeamLead, &[]).await;

    // Admin creates a team led by another team lead.
    let (status, team) = app
        .post(
            &admin,
            "/api/teams",
            json!({ "name": "  Night shift ", "team_lead_user_id": other_lead.user_id }),
        )
        .await;
    assert_eq!(status, 201, "{team}");
    assert_eq!(team["name"], "Night shift");
    assert_eq!(team["team_lead_user_id"], json!(other_lead.user_id));
    assert_eq!(team["is_active"], true);
    let night: Uuid = serde_json::from_value(team["id"].clone()).unwrap();
    assert_eq!(audit_levels(&app, "team.create", night).await, ["info"]);

    // A team without a lead is allowed.
    let (status, lonely) = app
        .post(&admin, "/api/teams", json!({ "name": "Unled" }))
        .await;
    assert_eq!(status, 201, "{lonely}");
    assert_eq!(lonely["team_lead_user_id"], Value::Null);

    // The admin sees all four teams; the lead sees only his own.
    let (status, all) = app.get(&admin, "/api/teams").await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 4);
    let (status, mine) = app.get(&lead, "/api/teams").await;
    assert_eq!(status, 200);
    let ids: Vec<&Value> = mine.as_array().unwrap().iter().map(|t| &t["id"]).collect();
    assert_eq!(ids, [&json!(lead.team_id.unwrap())]);
    let (status, own) = app
        .get(&lead, &format!("/api/teams/{}", lead.team_id.unwrap()))
        .await;
    assert_eq!(
        (status, &own["team_lead_user_id"]),
        (200, &json!(lead.user_id))
    );
    let (status, body) = app.get(&lead, &format!("/api/teams/{night}")).await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    // The lead renames his team but cannot rename another's, nor hand his team over.
    let path = format!("/api/teams/{}", lead.team_id.unwrap());
    let (status, body) = app
        .patch(&lead, &path, json!({ "name": "Day shift" }))
        .await;
    assert_eq!(
        (status, &body["name"]),
        (200, &json!("Day shift")),
        "{body}"
    );
    assert_eq!(
        audit_levels(&app, "team.update", lead.team_id.unwrap())
            .await
            .len(),
        1
    );
    let (status, body) = app
        .patch(
            &lead,
            &format!("/api/teams/{night}"),
            json!({ "name": "Mine" }),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let before = counts(&app).await;
    let (status, body) = app
        .patch(
            &lead,
            &path,
            json!({ "team_lead_user_id": other_lead.user_id }),
        )
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    assert_eq!(counts(&app).await, before);

    // The admin changes the lead, clears it, and deactivates the team.
    let (status, body) = app
        .patch(
            &admin,
            &format!("/api/teams/{night}"),
            json!({ "team_lead_user_id": lead.user_id }),
        )
        .await;
    assert_eq!(
        (status, &body["team_lead_user_id"]),
        (200, &json!(lead.user_id)),
        "{body}"
    );
    let (status, mine) = app.get(&lead, "/api/teams").await;
    assert_eq!((status, mine.as_array().unwrap().len()), (200, 2));
    let (status, body) = app
        .patch(
            &admin,
            &format!("/api/teams/{night}"),
            json!({ "team_lead_user_id": null, "is_active": false }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["team_lead_user_id"], Value::Null);
    assert_eq!(body["is_active"], false);
    assert_eq!(body["name"], "Night shift");
    let stored: (Option<Uuid>, bool) =
        sqlx::query_as("SELECT team_lead_user_id, is_active FROM teams WHERE id = $1")
            .bind(night)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, (None, false));
    assert_eq!(audit_levels(&app, "team.update", night).await.len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_routes_refuse_the_unauthorised_and_bad_input() {
    let app = AdminApp::start().await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let support = app.person(Role::Support, &["traders:read:*"]).await;
    let scoped_creator = app.person(Role::TeamLead, &["teams:create:team"]).await;
    let trader = app.person(Role::Trader, &[]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let other_lead = app.person(Role::TeamLead, &[]).await;
    let team = other_lead.team_id.unwrap();
    let path = format!("/api/teams/{team}");
    let before = counts(&app).await;

    for who in [&support, &trader, &merchant] {
        let (status, body) = app.post(who, "/api/teams", json!({ "name": "X" })).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{:?}", who.role);
        let (status, _) = app.get(who, "/api/teams").await;
        assert_eq!(status, 403);
        let (status, _) = app.get(who, &path).await;
        assert_eq!(status, 403);
        let (status, _) = app.patch(who, &path, json!({ "name": "X" })).await;
        assert_eq!(status, 403);
    }
    // A team does not exist in anyone's team before it is created: scope * only.
    let (status, body) = app
        .post(&scoped_creator, "/api/teams", json!({ "name": "X" }))
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));

    for (method, p) in [
        (Method::POST, "/api/teams".to_owned()),
        (Method::GET, "/api/teams".to_owned()),
        (Method::GET, path.clone()),
        (Method::PATCH, path.clone()),
    ] {
        let (status, body) = app
            .call(method, &p, None, Some(json!({ "name": "X" })))
            .await;
        assert_eq!((status, code(&body)), (401, "unauthenticated"), "{p}");
    }

    let (status, body) = raw(&app, Method::POST, "/api/teams", &admin, "{\"name\": ").await;
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let (status, body) = app
        .post(
            &admin,
            "/api/teams",
            json!({ "name": "A", "colour": "red" }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    for name in ["", "   ", &"n".repeat(129), "tab\there"] {
        let (status, body) = app
            .post(&admin, "/api/teams", json!({ "name": name }))
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, "validation_failed"),
            "{name:?}"
        );
    }
    let (status, body) = app
        .post(
            &admin,
            "/api/teams",
            json!({ "name": "Led by a trader", "team_lead_user_id": trader.user_id }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "not_a_team_lead"));
    let (status, body) = app
        .post(
            &admin,
            "/api/teams",
            json!({ "name": "Led by nobody", "team_lead_user_id": Uuid::new_v4() }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "not_a_team_lead"));
    let (status, body) = app
        .post(&admin, "/api/teams", json!({ "name": other_lead.login }))
        .await;
    assert_eq!((status, code(&body)), (409, "team_exists"));
    let (status, body) = raw(&app, Method::PATCH, &path, &admin, "not json").await;
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let (status, body) = app
        .patch(&admin, &path, json!({ "is_active": "yes" }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = app.patch(&admin, &path, json!({ "lead": null })).await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = app.patch(&admin, &path, json!({ "name": " " })).await;
    assert_eq!((status, code(&body)), (422, "validation_failed"));
    let (status, body) = app
        .patch(
            &admin,
            &path,
            json!({ "team_lead_user_id": merchant.user_id }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "not_a_team_lead"));
    let (status, body) = app
        .patch(&admin, &path, json!({ "name": scoped_creator.login }))
        .await;
    assert_eq!((status, code(&body)), (409, "team_exists"));
    let (status, body) = app
        .patch(
            &admin,
            &format!("/api/teams/{}", Uuid::new_v4()),
            json!({ "name": "Z" }),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app
        .get(&admin, &format!("/api/teams/{}", Uuid::new_v4()))
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    assert_eq!(counts(&app).await, before, "nothing was written");
    app.stop().await;
}

// ----------------------------------------------------------------------------------------------
// Traders: create and read
// ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_create_traders_and_each_role_reads_within_scope() {
    let app = AdminApp::start().await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let lead = app
        .person(
            Role::TeamLead,
            &["traders:read:team", "traders:create:team"],
        )
        .await;
    let team = lead.team_id.unwrap();

    // The admin registers a trader in the lead's team with a priority.
    let user = trader_user(&app).await;
    let (status, created) = app
        .post(
            &admin,
            "/api/traders",
            json!({ "user_id": user, "team_id": team, "priority": 7 }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let first: Uuid = serde_json::from_value(created["id"].clone()).unwrap();
    assert_eq!(created["user_id"], json!(user));
    assert_eq!(created["team_id"], json!(team));
    assert_eq!(created["priority"], 7);
    assert_eq!(created["is_in_work"], false);
    assert_eq!(created["is_traffic_enabled_by_teamlead"], true);
    assert_eq!(created["commissions"], json!([]));
    assert_eq!(audit_levels(&app, "trader.create", first).await, ["info"]);
    let record = latest_record(&app, first).await;
    assert_eq!(
        (record.trader_id, record.team_id, record.priority),
        (first.into(), Some(team), 7)
    );

    // Without a team and priority: no team, priority 100.
    let (status, loner) = app
        .post(
            &admin,
            "/api/traders",
            json!({ "user_id": trader_user(&app).await }),
        )
        .await;
    assert_eq!(status, 201, "{loner}");
    assert_eq!(
        (loner["priority"].as_i64(), &loner["team_id"]),
        (Some(100), &Value::Null)
    );
    let loner_id: Uuid = serde_json::from_value(loner["id"].clone()).unwrap();

    // A lead with traders:create:team creates into his own team.
    let (status, second) = app
        .post(
            &lead,
            "/api/traders",
            json!({ "user_id": trader_user(&app).await, "team_id": team }),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let second: Uuid = serde_json::from_value(second["id"].clone()).unwrap();
    assert_eq!(trader_records(&app, second).await, 1);

    // Commissions are part of the view.
    sqlx::query("INSERT INTO trader_commissions (trader_id, payment_method, direction, percent) VALUES ($1, 'sbp', 'pay_in', 1.5)")
        .bind(first)
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE traders SET is_in_work = true WHERE id = $1")
        .bind(first)
        .execute(&app.db.pool)
        .await
        .unwrap();

    // The admin sees everyone, filters by team and by in_work.
    let ids = |body: &Value| -> Vec<Uuid> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|t| serde_json::from_value(t["id"].clone()).unwrap())
            .collect()
    };
    let (status, all) = app.get(&admin, "/api/traders").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&all), [first, loner_id, second]);
    let (_, in_team) = app
        .get(&admin, &format!("/api/traders?team_id={team}"))
        .await;
    assert_eq!(ids(&in_team), [first, second]);
    let (_, working) = app.get(&admin, "/api/traders?in_work=true").await;
    assert_eq!(ids(&working), [first]);
    assert_eq!(working[0]["commissions"][0]["payment_method"], "sbp");
    assert_eq!(working[0]["commissions"][0]["direction"], "pay_in");
    assert_eq!(
        dec(working[0]["commissions"][0]["percent"].as_str().unwrap()),
        dec("1.5")
    );
    let (_, idle) = app.get(&admin, "/api/traders?in_work=false").await;
    assert_eq!(ids(&idle), [loner_id, second]);

    // The lead sees his team only.
    let (status, mine) = app.get(&lead, "/api/traders").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&mine), [first, second]);
    let (status, body) = app.get(&lead, &format!("/api/traders/{first}")).await;
    assert_eq!(
        (status, &body["commissions"][0]["payment_method"]),
        (200, &json!("sbp"))
    );
    let (status, body) = app.get(&lead, &format!("/api/traders/{loner_id}")).await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    // A trader sees himself only.
    let trader = app.person(Role::Trader, &[]).await;
    let own = trader.trader_id.unwrap();
    let (status, body) = app.get(&trader, "/api/traders").await;
    assert_eq!((status, ids(&body)), (200, vec![own]));
    let (status, body) = app.get(&trader, &format!("/api/traders/{own}")).await;
    assert_eq!((status, &body["login"]), (200, &json!(trader.login)));
    let (status, body) = app.get(&trader, &format!("/api/traders/{first}")).await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    // Support with a read grant sees every trader; without it, 403.
    let support = app.person(Role::Support, &["traders:read:*"]).await;
    let (status, body) = app.get(&support, &format!("/api/traders/{loner_id}")).await;
    assert_eq!(status, 200, "{body}");
    let merchant = app.person(Role::Merchant, &[]).await;
    let bare = app.person(Role::Support, &[]).await;
    for who in [&merchant, &bare] {
        let (status, _) = app.get(who, "/api/traders").await;
        assert_eq!(status, 403);
        let (status, _) = app.get(who, &format!("/api/traders/{first}")).await;
        assert_eq!(status, 403);
    }
    for p in ["/api/traders".to_owned(), format!("/api/traders/{first}")] {
        let (status, _) = app.call(Method::GET, &p, None, None).await;
        assert_eq!(status, 401);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trader_creation_refuses_the_unauthorised_and_bad_input() {
    let app = AdminApp::start().await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let lead = app.person(Role::TeamLead, &["traders:create:team"]).await;
    let other_lead = app.person(Role::TeamLead, &[]).await;
    let support = app.person(Role::Support, &["traders:read:*"]).await;
    let trader = app.person(Role::Trader, &[]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let user = trader_user(&app).await;
    let inactive: Uuid = sqlx::query_scalar(
        "INSERT INTO teams (name, is_active) VALUES ('Closed', false) RETURNING id",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let before = counts(&app).await;

    for who in [&support, &trader, &merchant] {
        let (status, body) = app
            .post(who, "/api/traders", json!({ "user_id": user }))
            .await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{:?}", who.role);
    }
    let (status, _) = app
        .call(
            Method::POST,
            "/api/traders",
            None,
            Some(json!({ "user_id": user })),
        )
        .await;
    assert_eq!(status, 401);

    let (status, body) = raw(&app, Method::POST, "/api/traders", &admin, "{\"user_id\"").await;
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let (status, body) = app
        .post(
            &admin,
            "/api/traders",
            json!({ "user_id": user, "deposit": 100 }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = app
        .post(&admin, "/api/traders", json!({ "user_id": "not-a-uuid" }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    for priority in [json!(-1), json!(1_000_001), json!(i64::MAX)] {
        let (status, body) = app
            .post(
                &admin,
                "/api/traders",
                json!({ "user_id": user, "priority": priority }),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, "validation_failed"),
            "{priority}"
        );
    }
    let (status, body) = app
        .post(&admin, "/api/traders", json!({ "user_id": 1.5 }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    // Not a trader-role user, or nobody at all.
    for not_trader in [merchant.user_id, support.user_id, Uuid::new_v4()] {
        let (status, body) = app
            .post(&admin, "/api/traders", json!({ "user_id": not_trader }))
            .await;
        assert_eq!((status, code(&body)), (422, "not_a_trader"));
    }
    // Already a trader.
    let (status, body) = app
        .post(&admin, "/api/traders", json!({ "user_id": trader.user_id }))
        .await;
    assert_eq!((status, code(&body)), (409, "trader_exists"));
    // An unknown or inactive team.
    let (status, body) = app
        .post(
            &admin,
            "/api/traders",
            json!({ "user_id": user, "team_id": Uuid::new_v4() }),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app
        .post(
            &admin,
            "/api/traders",
            json!({ "user_id": user, "team_id": inactive }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "team_inactive"));
    // A lead creates only into his own team.
    let (status, body) = app
        .post(
            &lead,
            "/api/traders",
            json!({ "user_id": user, "team_id": other_lead.team_id.unwrap() }),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app
        .post(&lead, "/api/traders", json!({ "user_id": user }))
        .await;
    assert_eq!((status, code(&body)), (422, "validation_failed"));

    assert_eq!(counts(&app).await, before, "nothing was written");
    app.stop().await;
}

// ----------------------------------------------------------------------------------------------
// Traders: update, in work, traffic
// ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_update_traders_and_team_leads_only_within_their_teams() {
    let app = AdminApp::start().await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let lead = app.person(Role::TeamLead, &["traders:update:team"]).await;
    let other_lead = app.person(Role::TeamLead, &[]).await;
    let team = lead.team_id.unwrap();
    let trader = app.person(Role::Trader, &[]).await;
    let stranger = app.person(Role::Trader, &[]).await;
    app.join_team(&trader, team).await;
    app.join_team(&stranger, other_lead.team_id.unwrap()).await;
    let id = trader.trader_id.unwrap();
    let path = format!("/api/traders/{id}");
    // The lead leads a second team, so he can move traders between his own teams.
    let second_team: Uuid = sqlx::query_scalar(
        "INSERT INTO teams (name, team_lead_user_id) VALUES ('Second', $1) RETURNING id",
    )
    .bind(lead.user_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();

    // The admin changes priority, team and activity.
    let (status, body) = app
        .patch(
            &admin,
            &path,
            json!({ "priority": 0, "team_id": other_lead.team_id, "is_active": false }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["priority"].as_i64(),
            &body["team_id"],
            &body["is_active"]
        ),
        (Some(0), &json!(other_lead.team_id), &json!(false))
    );
    assert_eq!(audit_levels(&app, "trader.update", id).await, ["info"]);
    let record = latest_record(&app, id).await;
    assert_eq!(
        (record.priority, record.team_id, record.is_active),
        (0, other_lead.team_id, false)
    );
    // ... and takes him out of every team, then back into the lead's team.
    let (status, body) = app
        .patch(&admin, &path, json!({ "team_id": null, "is_active": true }))
        .await;
    assert_eq!((status, &body["team_id"]), (200, &Value::Null), "{body}");
    assert_eq!(latest_record(&app, id).await.team_id, None);
    let (status, _) = app.patch(&admin, &path, json!({ "team_id": team })).await;
    assert_eq!(status, 200);

    // The lead changes the priority of his trader and moves him between his own teams.
    let records = trader_records(&app, id).await;
    let (status, body) = app.patch(&lead, &path, json!({ "priority": 42 })).await;
    assert_eq!(
        (status, body["priority"].as_i64()),
        (200, Some(42)),
        "{body}"
    );
    assert_eq!(latest_record(&app, id).await.priority, 42);
    let (status, body) = app
        .patch(&lead, &path, json!({ "team_id": second_team }))
        .await;
    assert_eq!(
        (status, &body["team_id"]),
        (200, &json!(second_team)),
        "{body}"
    );
    assert_eq!(latest_record(&app, id).await.team_id, Some(second_team));
    assert_eq!(trader_records(&app, id).await, records + 2);
    assert_eq!(audit_levels(&app, "trader.update", id).await.len(), 5);

    // ... but not into a team he does not lead, nor out of his teams, nor (de)activate him,
    // nor touch a trader of another team.
    let before = counts(&app).await;
    let (status, body) = app
        .patch(&lead, &path, json!({ "team_id": other_lead.team_id }))
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app.patch(&lead, &path, json!({ "team_id": null })).await;
    assert_eq!((status, code(&body)), (422, "validation_failed"));
    let (status, body) = app.patch(&lead, &path, json!({ "is_active": false })).await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = app
        .patch(
            &lead,
            &format!("/api/traders/{}", stranger.trader_id.unwrap()),
            json!({ "priority": 1 }),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    // Roles without the permission, no token, bad input.
    let support = app.person(Role::Support, &["traders:read:*"]).await;
    for who in [&trader, &support] {
        let (status, body) = app.patch(who, &path, json!({ "priority": 1 })).await;
        assert_eq!((status, code(&body)), (403, "forbidden"));
    }
    let (status, _) = app
        .call(Method::PATCH, &path, None, Some(json!({ "priority": 1 })))
        .await;
    assert_eq!(status, 401);
    let (status, body) = raw(&app, Method::PATCH, &path, &admin, "{priority: 1}").await;
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let (status, body) = app
        .patch(&admin, &path, json!({ "is_in_work": true }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    for priority in [-5_i64, 1_000_001, 9_999_999_999] {
        let (status, body) = app
            .patch(&admin, &path, json!({ "priority": priority }))
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, "validation_failed"),
            "{priority}"
        );
    }
    let (status, body) = app
        .patch(&admin, &path, json!({ "team_id": Uuid::new_v4() }))
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app
        .patch(
            &admin,
            &format!("/api/traders/{}", Uuid::new_v4()),
            json!({ "priority": 1 }),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    assert_eq!(counts(&app).await, before, "nothing was written");
    assert_eq!(latest_record(&app, id).await.priority, 42);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_trader_himself_switches_in_and_out_of_work() {
    let app = AdminApp::start().await;
    let trader = app.person(Role::Trader, &[]).await;
    let other = app.person(Role::Trader, &[]).await;
    let id = trader.trader_id.unwrap();
    let path = format!("/api/traders/{id}/in-work");

    let (status, body) = app.put(&trader, &path, json!({ "in_work": true })).await;
    assert_eq!((status, &body["is_in_work"]), (200, &json!(true)), "{body}");
    assert_eq!(audit_levels(&app, "trader.work_start", id).await, ["info"]);
    let record = latest_record(&app, id).await;
    assert!(record.is_in_work);
    assert_eq!(trader_records(&app, id).await, 1);
    let (status, body) = app.put(&trader, &path, json!({ "in_work": false })).await;
    assert_eq!((status, &body["is_in_work"]), (200, &json!(false)));
    assert_eq!(audit_levels(&app, "trader.work_stop", id).await, ["info"]);
    assert!(!latest_record(&app, id).await.is_in_work);

    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let lead = app.person(Role::TeamLead, &["traders:work:*"]).await;
    app.join_team(&trader, lead.team_id.unwrap()).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    let before = counts(&app).await;
    // Another trader's switch is not his to touch.
    let (status, body) = app.put(&other, &path, json!({ "in_work": true })).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    // Staff never switch a trader into work, whatever their grants.
    for who in [&admin, &lead, &merchant] {
        let (status, body) = app.put(who, &path, json!({ "in_work": true })).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{:?}", who.role);
    }
    let (status, _) = app
        .call(Method::PUT, &path, None, Some(json!({ "in_work": true })))
        .await;
    assert_eq!(status, 401);
    // Bad input.
    let (status, body) = raw(&app, Method::PUT, &path, &trader, "true").await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = raw(&app, Method::PUT, &path, &trader, "{\"in_work\": tru").await;
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let (status, body) = app.put(&trader, &path, json!({ "in_work": "yes" })).await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = app
        .put(&trader, &path, json!({ "in_work": true, "priority": 0 }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    // A deactivated trader cannot go to work.
    sqlx::query("UPDATE traders SET is_active = false WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = app.put(&trader, &path, json!({ "in_work": true })).await;
    assert_eq!((status, code(&body)), (409, "trader_inactive"));
    assert_eq!(counts(&app).await, before, "nothing was written");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_leads_switch_the_traffic_of_their_own_traders() {
    let app = AdminApp::start().await;
    let lead = app.person(Role::TeamLead, &["traders:traffic:team"]).await;
    let other_lead = app.person(Role::TeamLead, &["traders:traffic:team"]).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let trader = app.person(Role::Trader, &[]).await;
    app.join_team(&trader, lead.team_id.unwrap()).await;
    let id = trader.trader_id.unwrap();
    let path = format!("/api/traders/{id}/traffic");

    let (status, body) = app.put(&lead, &path, json!({ "enabled": false })).await;
    assert_eq!(
        (status, &body["is_traffic_enabled_by_teamlead"]),
        (200, &json!(false)),
        "{body}"
    );
    assert_eq!(
        audit_levels(&app, "trader.traffic_disable", id).await,
        ["warning"]
    );
    assert!(!latest_record(&app, id).await.is_traffic_enabled_by_teamlead);
    let (status, body) = app.put(&admin, &path, json!({ "enabled": true })).await;
    assert_eq!(
        (status, &body["is_traffic_enabled_by_teamlead"]),
        (200, &json!(true)),
        "{body}"
    );
    assert_eq!(
        audit_levels(&app, "trader.traffic_enable", id).await,
        ["info"]
    );
    assert!(latest_record(&app, id).await.is_traffic_enabled_by_teamlead);
    assert_eq!(trader_records(&app, id).await, 2);

    let before = counts(&app).await;
    let (status, body) = app
        .put(&other_lead, &path, json!({ "enabled": false }))
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let support = app.person(Role::Support, &["traders:update:*"]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    for who in [&trader, &support, &merchant] {
        let (status, body) = app.put(who, &path, json!({ "enabled": false })).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{:?}", who.role);
    }
    let (status, _) = app
        .call(Method::PUT, &path, None, Some(json!({ "enabled": false })))
        .await;
    assert_eq!(status, 401);
    let (status, body) = raw(&app, Method::PUT, &path, &lead, "{").await;
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let (status, body) = app.put(&lead, &path, json!({})).await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = app.put(&lead, &path, json!({ "enabled": 0 })).await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = app
        .put(&lead, &path, json!({ "enabled": false, "reason": "x" }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = app
        .put(
            &admin,
            &format!("/api/traders/{}/traffic", Uuid::new_v4()),
            json!({ "enabled": false }),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    assert_eq!(counts(&app).await, before, "nothing was written");
    app.stop().await;
}

// ----------------------------------------------------------------------------------------------
// Trader commissions
// ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trader_commissions_are_set_and_removed() {
    let app = AdminApp::start().await;
    let staff = app.person(Role::Support, &["commissions:update:*"]).await;
    let lead = app
        .person(Role::TeamLead, &["commissions:update:team"])
        .await;
    let trader = app.person(Role::Trader, &[]).await;
    let stranger = app.person(Role::Trader, &[]).await;
    app.join_team(&trader, lead.team_id.unwrap()).await;
    let id = trader.trader_id.unwrap();
    let path = format!("/api/traders/{id}/commissions/sbp/pay_in");

    let (status, body) = app.put(&staff, &path, json!({ "percent": "2.5" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["commissions"][0]["payment_method"], "sbp");
    assert_eq!(body["commissions"][0]["allow_loss"], false);
    assert_eq!(
        dec(body["commissions"][0]["percent"].as_str().unwrap()),
        dec("2.5")
    );
    let record = latest_record(&app, id).await;
    assert_eq!(record.commissions.len(), 1);
    assert_eq!(record.commissions[0].payment_method, "sbp");
    assert_eq!(record.commissions[0].direction, Direction::PayIn);
    assert_eq!(record.commissions[0].percent, dec("2.5"));
    // Overwrite, by the team lead of the trader's team, as a JSON number.
    let (status, body) = app.put(&lead, &path, json!({ "percent": 1.25 })).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .put(
            &lead,
            &format!("/api/traders/{id}/commissions/card2card/pay_out"),
            json!({ "percent": 0 }),
        )
        .await;
    assert_eq!(status, 200);
    let record = latest_record(&app, id).await;
    let got: Vec<(String, Direction, Decimal)> = record
        .commissions
        .iter()
        .map(|c| (c.payment_method.clone(), c.direction, c.percent))
        .collect();
    assert_eq!(
        got,
        [
            ("card2card".to_owned(), Direction::PayOut, dec("0")),
            ("sbp".to_owned(), Direction::PayIn, dec("1.25"))
        ]
    );
    assert_eq!(
        audit_levels(&app, "trader.commission_set", id).await,
        ["info", "info", "info"]
    );
    let (status, body) = app.get(&staff, &format!("/api/traders/{id}")).await;
    assert_eq!(
        status, 403,
        "commissions:update does not grant traders:read: {body}"
    );

    // Removal.
    let (status, body) = app
        .delete(
            &staff,
            &format!("/api/traders/{id}/commissions/card2card/pay_out"),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let record = latest_record(&app, id).await;
    assert_eq!(record.commissions.len(), 1);
    assert_eq!(record.commissions[0].payment_method, "sbp");
    assert_eq!(
        audit_levels(&app, "trader.commission_delete", id).await,
        ["info"]
    );
    assert_eq!(trader_records(&app, id).await, 4);

    let before = counts(&app).await;
    let (status, body) = app
        .delete(
            &staff,
            &format!("/api/traders/{id}/commissions/card2card/pay_out"),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    // Out of scope, without permission, without a token.
    let foreign = format!(
        "/api/traders/{}/commissions/sbp/pay_in",
        stranger.trader_id.unwrap()
    );
    let (status, body) = app.put(&lead, &foreign, json!({ "percent": 1 })).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app.delete(&lead, &foreign).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app
        .put(
            &staff,
            &format!("/api/traders/{}/commissions/sbp/pay_in", Uuid::new_v4()),
            json!({ "percent": 1 }),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let reader = app.person(Role::Support, &["traders:*:*"]).await;
    let merchant = app.person(Role::Merchant, &[]).await;
    for who in [&trader, &reader, &merchant] {
        let (status, body) = app.put(who, &path, json!({ "percent": 1 })).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{:?}", who.role);
        let (status, _) = app.delete(who, &path).await;
        assert_eq!(status, 403);
    }
    let (status, _) = app
        .call(Method::PUT, &path, None, Some(json!({ "percent": 1 })))
        .await;
    assert_eq!(status, 401);
    let (status, _) = app.call(Method::DELETE, &path, None, None).await;
    assert_eq!(status, 401);
    // Bad input.
    let (status, body) = raw(&app, Method::PUT, &path, &staff, "{\"percent\": }").await;
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let (status, body) = app
        .put(&staff, &path, json!({ "percent": 1, "fixed_fee": 1 }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    let (status, body) = app.put(&staff, &path, json!({ "percent": "lots" })).await;
    assert_eq!((status, code(&body)), (422, "invalid_body"));
    for percent in ["-0.01", "100.01", "1000000000", "1.00001"] {
        let (status, body) = app.put(&staff, &path, json!({ "percent": percent })).await;
        assert_eq!(
            (status, code(&body)),
            (422, "validation_failed"),
            "{percent}"
        );
    }
    let (status, body) = app
        .put(
            &staff,
            &format!("/api/traders/{id}/commissions/sbp/sideways"),
            json!({ "percent": 1 }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "validation_failed"));
    let (status, body) = app
        .delete(
            &staff,
            &format!("/api/traders/{id}/commissions/sbp/sideways"),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "validation_failed"));
    let (status, body) = app
        .put(
            &staff,
            &format!("/api/traders/{id}/commissions/pigeon/pay_in"),
            json!({ "percent": 1 }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "unknown_payment_method"));
    assert_eq!(counts(&app).await, before, "nothing was written");
    assert_eq!(
        latest_record(&app, id).await.commissions[0].percent,
        dec("1.25")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_money_losing_trader_commission_needs_allow_loss_and_its_permission() {
    let app = AdminApp::start().await;
    // A store pays 2 % for SBP pay-ins.
    let owner: Uuid = sqlx::query_scalar("INSERT INTO users (login, password_hash, role) VALUES ('shop-owner', 'x', 'merchant') RETURNING id")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let merchant: Uuid = sqlx::query_scalar(
        "INSERT INTO merchants (user_id, name) VALUES ($1, 'Shop') RETURNING id",
    )
    .bind(owner)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let store: Uuid = sqlx::query_scalar(
        "INSERT INTO stores (merchant_id, name, signing_secret_encrypted) VALUES ($1, 'Shop', 'x') RETURNING id",
    )
    .bind(merchant)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO store_commissions (store_id, payment_method, direction, percent) VALUES ($1, 'sbp', 'pay_in', 2)")
        .bind(store)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let staff = app.person(Role::Support, &["commissions:update:*"]).await;
    let boss = app
        .person(
            Role::Admin,
            &["commissions:update:*", "commissions:allow_loss:*"],
        )
        .await;
    let trader = app.person(Role::Trader, &[]).await;
    let id = trader.trader_id.unwrap();
    let path = format!("/api/traders/{id}/commissions/sbp/pay_in");

    // Earning as much as the store pays is fine; more is refused.
    let (status, body) = app.put(&staff, &path, json!({ "percent": "2" })).await;
    assert_eq!(status, 200, "{body}");
    let before = counts(&app).await;
    let (status, body) = app.put(&staff, &path, json!({ "percent": "2.0001" })).await;
    assert_eq!((status, code(&body)), (422, "commission_would_lose_money"));
    let (status, body) = app
        .put(&boss, &path, json!({ "percent": "3", "allow_loss": false }))
        .await;
    assert_eq!((status, code(&body)), (422, "commission_would_lose_money"));
    // allow_loss needs commissions:allow_loss.
    let (status, body) = app
        .put(&staff, &path, json!({ "percent": "3", "allow_loss": true }))
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    assert_eq!(counts(&app).await, before, "nothing was written");
    // Other methods and directions are not affected.
    let (status, _) = app
        .put(
            &staff,
            &format!("/api/traders/{id}/commissions/sbp/pay_out"),
            json!({ "percent": "3" }),
        )
        .await;
    assert_eq!(status, 200);

    let (status, body) = app
        .put(&boss, &path, json!({ "percent": "3", "allow_loss": true }))
        .await;
    assert_eq!(status, 200, "{body}");
    let stored: (Decimal, bool) = sqlx::query_as(
        "SELECT percent, allow_loss FROM trader_commissions WHERE trader_id = $1 AND payment_method = 'sbp' AND direction = 'pay_in'",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(stored, (dec("3"), true));
    let record = latest_record(&app, id).await;
    let sbp_in = record
        .commissions
        .iter()
        .find(|c| c.payment_method == "sbp" && c.direction == Direction::PayIn)
        .unwrap();
    assert_eq!(sbp_in.percent, dec("3"));
    let audited: Value = sqlx::query_scalar(
        "SELECT after FROM audit_log WHERE action = 'trader.commission_set' AND actor_user_id = $1",
    )
    .bind(boss.user_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(audited["allow_loss"], true);
    app.stop().await;
}
