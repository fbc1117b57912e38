//! `jivapay seed --demo`: merchants with stores and commissions, team leads with teams, traders
//! with commissions, approved requisites in several pools and a USDT deposit each. Idempotent:
//! people are keyed by login, requisites by number, deposits by a deterministic command id.

use crate::audit::{self, Actor, Level};
use crate::auth::password;
use crate::mask::visible_parts;
use crate::outbox::enqueue;
use crate::outbox::snapshots::{publish_store, publish_trader};
use crate::seed::SeedError;
use crate::state::AppState;
use jivapay_schemas::records::{TraderCommand, TraderCommandKind};
use jivapay_schemas::topics::TRADER_COMMANDS;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

/// Namespace of the demo's deterministic ids (deposit commands).
const DEMO_NAMESPACE: Uuid = Uuid::from_u128(0x0d3e_0a11_5eed_4c0d_9d3e_0000_0000_0001);

/// (merchant login, merchant name, stores)
const MERCHANTS: &[(&str, &str, &[&str])] = &[
    (
        "demo-merchant-1",
        "Coffee & Co",
        &["Coffee & Co online", "Coffee & Co app"],
    ),
    ("demo-merchant-2", "GameHub", &["GameHub store"]),
];
/// A demo team: (team lead login, team name, trader logins with priority).
type DemoTeam = (&'static str, &'static str, &'static [(&'static str, i32)]);

const TEAMS: &[DemoTeam] = &[
    (
        "demo-lead-1",
        "Moscow team",
        &[
            ("demo-trader-1", 1),
            ("demo-trader-2", 2),
            ("demo-trader-3", 3),
        ],
    ),
    (
        "demo-lead-2",
        "Almaty team",
        &[
            ("demo-trader-4", 1),
            ("demo-trader-5", 2),
            ("demo-trader-6", 5),
        ],
    ),
];
/// A demo requisite: (method, fiat, bank, kind, number).
type DemoRequisite = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    String,
);

/// Requisites per trader index.
fn requisites(trader: usize) -> Vec<DemoRequisite> {
    let n = trader as u64;
    let phone = format!("+7900{:07}", 1_000_000 + n * 7919);
    let account = format!("40817810{:012}", 100_000_000 + n * 104_729);
    let card = luhn_card(4_276_550_000_000_000 / 10 + n * 1_000_003);
    if trader <= 3 {
        vec![
            ("sbp", "RUB", "sberbank", "phone", phone),
            ("card2card", "RUB", "tbank", "card", card),
            ("account", "RUB", "vtb", "account", account),
        ]
    } else {
        vec![
            ("card2card", "KZT", "kaspi", "card", card),
            ("account", "KZT", "halyk", "account", account),
        ]
    }
}

/// A 16-digit card number: 15 given digits and the Luhn check digit.
fn luhn_card(first15: u64) -> String {
    let body = format!("{first15:015}");
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|candidate| jivapay_core::validate::luhn(candidate))
        .expect("one check digit fits")
}

/// Commissions (method, direction, store %, trader %): stores always pay more than traders earn.
const COMMISSIONS: &[(&str, &str, &str, &str)] = &[
    ("sbp", "pay_in", "3.0", "2.0"),
    ("card2card", "pay_in", "3.5", "2.5"),
    ("account", "pay_in", "2.5", "1.5"),
    ("card2card", "pay_out", "4.0", "3.0"),
];
/// USDT each demo trader deposits.
const DEPOSIT_USDT: &str = "5000.000000";

async fn user(
    tx: &mut PgConnection,
    login: &str,
    role: &str,
    hash: &str,
) -> Result<(Uuid, bool), SeedError> {
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO users (login, password_hash, role, display_name) VALUES ($1, $2, $3, $1)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(login)
    .bind(hash)
    .bind(role)
    .fetch_optional(&mut *tx)
    .await?;
    match inserted {
        Some(id) => Ok((id, true)),
        None => Ok((
            sqlx::query_scalar("SELECT id FROM users WHERE lower(login) = lower($1)")
                .bind(login)
                .fetch_one(&mut *tx)
                .await?,
            false,
        )),
    }
}

fn percent(text: &str) -> Decimal {
    text.parse().expect("demo percentages are valid")
}

/// Seeds the demo data; returns how many people it created (0 on a second run).
pub async fn demo(state: &AppState, demo_password: &str) -> Result<usize, SeedError> {
    if demo_password.len() < password::MIN_LENGTH {
        return Err(SeedError::Invalid(format!(
            "the demo password must have at least {} characters (JIVAPAY__SEED__DEMO_PASSWORD)",
            password::MIN_LENGTH
        )));
    }
    let hash = password::hash(demo_password).map_err(|e| SeedError::Invalid(e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    let mut created = 0;
    for (login, name, stores) in MERCHANTS {
        let (user_id, new) = user(&mut tx, login, "merchant", &hash).await?;
        created += usize::from(new);
        let merchant_id: Uuid = sqlx::query_scalar(
            "INSERT INTO merchants (user_id, name) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET name = merchants.name RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        for store_name in *stores {
            let secret = format!("whsec_demo_{}", Uuid::new_v4().simple());
            // `xmax = 0` is true only for a row this statement inserted.
            let (store_id, mut changed): (Uuid, bool) = sqlx::query_as(
                "INSERT INTO stores (merchant_id, name, signing_secret_encrypted) VALUES ($1, $2, $3)
                 ON CONFLICT (merchant_id, name) DO UPDATE SET name = stores.name RETURNING id, (xmax = 0)",
            )
            .bind(merchant_id)
            .bind(store_name)
            .bind(base64_encrypted(state, &secret))
            .fetch_one(&mut *tx)
            .await?;
            for (method, direction, store_percent, _) in COMMISSIONS {
                changed |= 0 < sqlx::query(
                    "INSERT INTO store_commissions (store_id, payment_method, direction, percent) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (store_id, payment_method, direction) DO NOTHING",
                )
                .bind(store_id)
                .bind(method)
                .bind(direction)
                .bind(percent(store_percent))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            // Published only when something changed, so a second run writes nothing.
            if changed {
                publish_store(&mut tx, &state.schemas, store_id).await?;
            }
        }
    }
    let mut trader_index = 0;
    for (lead_login, team_name, traders) in TEAMS {
        let (lead_id, new) = user(&mut tx, lead_login, "team_lead", &hash).await?;
        created += usize::from(new);
        sqlx::query(
            "INSERT INTO staff_profiles (user_id, user_role, granted_permissions, role_description)
             VALUES ($1, 'team_lead', ARRAY['traders:read:team', 'traders:traffic:team', 'requisites:read:team'], 'Demo team lead')
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(lead_id)
        .execute(&mut *tx)
        .await?;
        let team_id: Uuid = sqlx::query_scalar(
            "INSERT INTO teams (name, team_lead_user_id) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET name = teams.name RETURNING id",
        )
        .bind(team_name)
        .bind(lead_id)
        .fetch_one(&mut *tx)
        .await?;
        for (login, priority) in *traders {
            trader_index += 1;
            let (user_id, new) = user(&mut tx, login, "trader", &hash).await?;
            created += usize::from(new);
            let (trader_id, mut changed): (Uuid, bool) = sqlx::query_as(
                "INSERT INTO traders (user_id, team_id, priority, is_in_work) VALUES ($1, $2, $3, true)
                 ON CONFLICT (user_id) DO UPDATE SET team_id = traders.team_id RETURNING id, (xmax = 0)",
            )
            .bind(user_id)
            .bind(team_id)
            .bind(priority)
            .fetch_one(&mut *tx)
            .await?;
            for (method, direction, _, trader_percent) in COMMISSIONS {
                changed |= 0 < sqlx::query(
                    "INSERT INTO trader_commissions (trader_id, payment_method, direction, percent) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (trader_id, payment_method, direction) DO NOTHING",
                )
                .bind(trader_id)
                .bind(method)
                .bind(direction)
                .bind(percent(trader_percent))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            for (method, fiat, bank, kind, number) in requisites(trader_index) {
                let (first6, last4) = visible_parts(kind, &number);
                changed |= 0 < sqlx::query(
                    "INSERT INTO requisites (trader_id, payment_method, fiat_currency, bank_id, kind, number_ciphertext,
                        number_first6, number_last4, number_hash, holder_name, is_pay_in_enabled, is_pay_out_enabled,
                        min_amount, max_amount, daily_turnover_limit, monthly_turnover_limit, daily_count_limit,
                        moderation_status, moderated_at)
                     SELECT $1, $2, $3, (SELECT id FROM banks WHERE code = $4 LIMIT 1), $5, $6, $7, $8, $9, $10, true,
                        $5 = 'card', 100, 100000, 3000000, 50000000, 500, 'approved', now()
                     WHERE NOT EXISTS (SELECT 1 FROM requisites WHERE number_hash = $9 AND payment_method = $2)",
                )
                .bind(trader_id)
                .bind(method)
                .bind(fiat)
                .bind(bank)
                .bind(kind)
                .bind(state.data_key.encrypt(&number))
                .bind(first6)
                .bind(last4)
                .bind(state.data_key.lookup_hash(&number))
                .bind(format!("Demo Trader {trader_index}"))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if changed {
                publish_trader(&mut tx, &state.schemas, trader_id).await?;
            }
            let deposit = TraderCommand {
                command_id: Uuid::new_v5(&DEMO_NAMESPACE, trader_id.as_bytes()),
                trader_id: trader_id.into(),
                order_id: None,
                kind: TraderCommandKind::Deposit,
                amount: Some(DEPOSIT_USDT.parse().expect("valid amount")),
                resolution: None,
                receipt_key: None,
                actor_id: None,
                actor_role: Some("system".into()),
                reason: Some("demo deposit".into()),
                issued_at: chrono::Utc::now().timestamp_millis(),
            };
            if new {
                enqueue(
                    &mut tx,
                    &state.schemas,
                    TRADER_COMMANDS,
                    &trader_id.to_string(),
                    Some(&deposit),
                )
                .await?;
            }
        }
    }
    if created == 0 {
        // Nothing new: leave no trace, not even an audit row.
        return Ok(0);
    }
    audit::record(
        &mut tx,
        Actor::System,
        audit::Entry {
            action: "seed.demo",
            entity_type: "seed",
            entity_id: "demo".into(),
            before: None,
            after: Some(serde_json::json!({ "people_created": created })),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// Stores keep their signing secret encrypted, as base64 text.
pub fn base64_encrypted(state: &AppState, secret: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(state.data_key.encrypt(secret))
}
