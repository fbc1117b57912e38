//! Migrations apply to a fresh database (and again, as a no-op), and the ledger's invariants
//! hold in the database itself: a transfer's entries sum to zero per currency (checked at
//! commit), the journal is append-only, and a replayed transfer id is a no-op.

use jivapay_tests::TestDatabase;
use sqlx::{PgPool, Row};
use uuid::Uuid;

async fn account(pool: &PgPool, owner_kind: &str, kind: &str, currency: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO ledger_accounts (owner_kind, owner_id, currency, kind) VALUES ($1, NULL, $2, $3)
         ON CONFLICT (owner_kind, owner_id, currency, kind) DO UPDATE SET currency = EXCLUDED.currency
         RETURNING id",
    )
    .bind(owner_kind)
    .bind(currency)
    .bind(kind)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Writes a transfer with `entries` (account, currency, amount) in one transaction.
async fn transfer(
    pool: &PgPool,
    id: Uuid,
    entries: &[(Uuid, &str, &str)],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO ledger_transfers (id, kind, entry_count) VALUES ($1, 'deposit', $2)")
        .bind(id)
        .bind(entries.len() as i32)
        .execute(&mut *tx)
        .await?;
    for (n, (account, currency, amount)) in entries.iter().enumerate() {
        sqlx::query(
            "INSERT INTO ledger_entries (transfer_id, entry_no, account_id, currency, amount)
             VALUES ($1, $2, $3, $4, $5::numeric)",
        )
        .bind(id)
        .bind(n as i32 + 1)
        .bind(account)
        .bind(currency)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The platform's USDT fee account and the external settlement account: the two sides of a
/// simple transfer.
async fn usdt_accounts(pool: &PgPool) -> (Uuid, Uuid) {
    (
        account(pool, "platform", "fees", "USDT").await,
        account(pool, "external", "settlement", "USDT").await,
    )
}

/// A migrated database with one committed USDT transfer of `amount` from the external
/// settlement account to the platform's fees: the database, both accounts and the transfer id.
async fn with_committed_transfer(amount: &str) -> (TestDatabase, Uuid, Uuid, Uuid) {
    let db = TestDatabase::migrated().await;
    let (fees, external) = usdt_accounts(&db.pool).await;
    let id = Uuid::new_v4();
    let debit = format!("-{amount}");
    transfer(
        &db.pool,
        id,
        &[(fees, "USDT", amount), (external, "USDT", &debit)],
    )
    .await
    .expect("balanced transfer commits");
    (db, fees, external, id)
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn migrations_apply_to_a_fresh_database_and_again() {
    let db = TestDatabase::migrated().await;
    jivapay_platform::db::migrate(&db.pool)
        .await
        .expect("a second run is a no-op");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'
         AND table_name = ANY($1)",
    )
    .bind(vec![
        "users",
        "staff_profiles",
        "merchants",
        "stores",
        "store_api_keys",
        "store_commissions",
        "teams",
        "traders",
        "trader_commissions",
        "requisites",
        "countries",
        "currencies",
        "payment_methods",
        "banks",
        "exchange_rates",
        "configuration_settings",
        "orders",
        "payment_sessions",
        "receipts",
        "ledger_accounts",
        "ledger_transfers",
        "ledger_entries",
        "ledger_balances",
        "callback_deliveries",
        "callback_attempts",
        "audit_log",
        "outbox",
        "sink_offsets",
    ])
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(tables, 28);
    db.drop_database().await;
}

#[tokio::test]
async fn a_balanced_transfer_commits() {
    let (db, _, _, id) = with_committed_transfer("10.000000").await;
    let sum: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT sum(amount) FROM ledger_entries WHERE transfer_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(sum.is_zero());
    db.drop_database().await;
}

#[tokio::test]
async fn an_unbalanced_transfer_is_rejected_at_commit_and_leaves_nothing() {
    let db = TestDatabase::migrated().await;
    let (fees, external) = usdt_accounts(&db.pool).await;
    let id = Uuid::new_v4();
    let err = transfer(
        &db.pool,
        id,
        &[(fees, "USDT", "10.000000"), (external, "USDT", "-9.999999")],
    )
    .await
    .expect_err("unbalanced transfer is refused");
    assert_eq!(sqlstate(&err), "23514", "{err}");
    assert!(err.to_string().contains("does not balance"), "{err}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_transfers WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "no partial write");
    db.drop_database().await;
}

#[tokio::test]
async fn no_entry_joins_a_committed_transfer() {
    let (db, fees, _, id) = with_committed_transfer("7").await;
    // A third entry would change a committed transfer: refused at once, not at commit.
    let err = sqlx::query(
        "INSERT INTO ledger_entries (transfer_id, entry_no, account_id, currency, amount)
         VALUES ($1, 3, $2, 'USDT', 1)",
    )
    .bind(id)
    .bind(fees)
    .execute(&db.pool)
    .await
    .expect_err("an entry for a committed transfer is refused");
    assert_eq!(sqlstate(&err), "23514", "{err}");
    assert!(err.to_string().contains("already committed"), "{err}");
    let entries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_entries WHERE transfer_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(entries, 2);
    db.drop_database().await;
}

#[tokio::test]
async fn a_transfer_with_missing_entries_is_rejected_at_commit() {
    let db = TestDatabase::migrated().await;
    let fees = account(&db.pool, "platform", "fees", "USDT").await;
    let id = Uuid::new_v4();
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO ledger_transfers (id, kind, entry_count) VALUES ($1, 'deposit', 2)")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO ledger_entries (transfer_id, entry_no, account_id, currency, amount)
         VALUES ($1, 1, $2, 'USDT', 5)",
    )
    .bind(id)
    .bind(fees)
    .execute(&mut *tx)
    .await
    .unwrap();
    let err = tx
        .commit()
        .await
        .expect_err("one of two entries is refused");
    assert_eq!(sqlstate(&err), "23514", "{err}");
    assert!(err.to_string().contains("expected entries 1..2"), "{err}");
    db.drop_database().await;
}

#[tokio::test]
async fn balance_is_per_currency() {
    let db = TestDatabase::migrated().await;
    // Fiat currencies are reference data (seeded), not part of the migrations.
    sqlx::query("INSERT INTO currencies (code, kind, name, scale) VALUES ('RUB', 'fiat', 'Russian ruble', 2)")
        .execute(&db.pool)
        .await
        .unwrap();
    let usdt = account(&db.pool, "platform", "fees", "USDT").await;
    let rub = account(&db.pool, "platform", "fees", "RUB").await;
    // +10 USDT and -10 RUB sum to zero as numbers, but not per currency.
    let err = transfer(
        &db.pool,
        Uuid::new_v4(),
        &[(usdt, "USDT", "10"), (rub, "RUB", "-10")],
    )
    .await
    .expect_err("per-currency imbalance is refused");
    assert_eq!(sqlstate(&err), "23514", "{err}");
    // An entry whose currency is not its account's is refused outright.
    let err = transfer(
        &db.pool,
        Uuid::new_v4(),
        &[(usdt, "RUB", "10"), (rub, "RUB", "-10")],
    )
    .await
    .expect_err("currency mismatch is refused");
    assert_eq!(sqlstate(&err), "23503", "{err}");
    db.drop_database().await;
}

#[tokio::test]
async fn the_journal_is_append_only_and_replays_are_no_ops() {
    let (db, fees, _, id) = with_committed_transfer("5").await;

    let err =
        sqlx::query("UPDATE ledger_entries SET amount = 6 WHERE transfer_id = $1 AND entry_no = 1")
            .bind(id)
            .execute(&db.pool)
            .await
            .expect_err("entries are immutable");
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("DELETE FROM ledger_transfers WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .expect_err("transfers are immutable");
    assert!(err.to_string().contains("append-only"), "{err}");

    // The same transfer again, as a sink replaying its input would write it.
    let inserted = sqlx::query(
        "INSERT INTO ledger_transfers (id, kind, entry_count) VALUES ($1, 'deposit', 2)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(inserted, 0);
    let row = sqlx::query(
        "SELECT count(*) AS n, sum(amount) AS total FROM ledger_entries WHERE account_id = $1",
    )
    .bind(fees)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>("n"), 1);
    assert_eq!(
        row.get::<rust_decimal::Decimal, _>("total"),
        rust_decimal::Decimal::from(5)
    );
    db.drop_database().await;
}
