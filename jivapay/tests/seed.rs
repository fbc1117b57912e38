//! `jivapay seed --demo` run twice on a fresh database: reference data, default settings, the
//! first admin with `*:*:*`, demo people with requisites — and the second run changes nothing.

use jivapay_tests::process::command;
use jivapay_tests::TestDatabase;
use std::path::Path;

const ADMIN_PASSWORD: &str = "first-admin-password";

fn seed(database_url: &str) -> String {
    let output = command(
        Path::new(env!("CARGO_BIN_EXE_jivapay")),
        &["seed", "--demo"],
        &[
            ("JIVAPAY__DATABASE__URL", database_url),
            ("JIVAPAY__SEED__ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("JIVAPAY__SEED__DEMO_PASSWORD", "demo-password-123"),
            ("JIVAPAY__LOG__FORMAT", "pretty"),
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn counts(db: &TestDatabase) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for table in [
        "currencies",
        "countries",
        "payment_methods",
        "payment_method_currencies",
        "banks",
        "exchange_rates",
        "configuration_settings",
        "users",
        "staff_profiles",
        "merchants",
        "stores",
        "store_commissions",
        "teams",
        "traders",
        "trader_commissions",
        "requisites",
        "outbox",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        out.push((table.to_owned(), n));
    }
    out
}

#[tokio::test]
async fn seeding_twice_is_the_same_as_once() {
    let db = TestDatabase::empty().await;
    let first = seed(&db.url);
    assert!(first.contains("admin \"admin\" created"), "{first}");
    let after_first = counts(&db).await;
    let second = seed(&db.url);
    assert!(
        second.contains("already exists") && second.contains("0 people created"),
        "{second}"
    );
    assert_eq!(
        counts(&db).await,
        after_first,
        "a second run writes nothing"
    );

    let get = |table: &str| after_first.iter().find(|(t, _)| t == table).unwrap().1;
    assert_eq!(get("currencies"), 5, "USDT and four fiat currencies");
    assert_eq!(get("payment_methods"), 3);
    assert!(get("banks") >= 10);
    assert_eq!(
        get("configuration_settings") as usize,
        jivapay_admin::settings_catalog::SETTINGS.len()
    );
    assert_eq!(
        (
            get("merchants"),
            get("stores"),
            get("teams"),
            get("traders")
        ),
        (2, 3, 2, 6)
    );
    let approved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM requisites WHERE moderation_status = 'approved'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(approved, get("requisites"));
    assert!(approved >= 12);

    let (hash, grants): (String, Vec<String>) = sqlx::query_as(
        "SELECT u.password_hash, s.granted_permissions FROM users u JOIN staff_profiles s ON s.user_id = u.id
         WHERE u.login = 'admin' AND u.role = 'admin'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(grants, ["*:*:*"]);
    assert!(jivapay_admin::auth::password::verify(ADMIN_PASSWORD, &hash));

    // Published through the outbox: every trader and store, each demo deposit once.
    for (topic, expected) in [
        ("traders", 6),
        ("stores", 3),
        ("trader.commands", 6),
        ("rates", 4),
    ] {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE topic = $1")
            .bind(topic)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(n, expected, "{topic}");
    }
    db.drop_database().await;
}
