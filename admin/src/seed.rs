//! Seeders. `jivapay seed` creates reference data (currencies, countries, payment methods and
//! the pools they form, major banks, an initial rate per currency), the default runtime
//! settings, and the first admin with `*:*:*` (password from the environment).
//! `jivapay seed --demo` adds merchants, stores, team leads and traders with requisites for the
//! demo. Every step is idempotent: run it any number of times.

use crate::audit::{self, Actor, Level};
use crate::auth::password;
use crate::outbox::enqueue;
use crate::settings_catalog::SETTINGS;
use crate::state::AppState;
use jivapay_schemas::records::{Rate, Setting, SettingType};
use jivapay_schemas::topics::{RATES, SETTINGS as SETTINGS_TOPIC};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("outbox: {0}")]
    Outbox(#[from] crate::outbox::EnqueueError),
    #[error("{0}")]
    Invalid(String),
}

/// (code, name)
const COUNTRIES: &[(&str, &str)] = &[
    ("RU", "Russia"),
    ("KZ", "Kazakhstan"),
    ("UZ", "Uzbekistan"),
    ("KG", "Kyrgyzstan"),
];
/// (code, name, country, initial rate in fiat per USDT)
const FIAT: &[(&str, &str, &str, &str)] = &[
    ("RUB", "Russian ruble", "RU", "92.50"),
    ("KZT", "Kazakhstani tenge", "KZ", "478.00"),
    ("UZS", "Uzbekistani som", "UZ", "12650.00"),
    ("KGS", "Kyrgyzstani som", "KG", "87.30"),
];
/// (code, name, requisite kind)
const METHODS: &[(&str, &str, &str)] = &[
    ("sbp", "SBP (faster payments)", "phone"),
    ("card2card", "Card to card", "card"),
    ("account", "Bank account transfer", "account"),
];
/// Pools offered: (payment method, fiat currency)
const POOLS: &[(&str, &str)] = &[
    ("sbp", "RUB"),
    ("card2card", "RUB"),
    ("account", "RUB"),
    ("card2card", "KZT"),
    ("account", "KZT"),
    ("card2card", "UZS"),
    ("card2card", "KGS"),
];
/// (country, code, name)
const BANKS: &[(&str, &str, &str)] = &[
    ("RU", "sberbank", "Sberbank"),
    ("RU", "tbank", "T-Bank"),
    ("RU", "vtb", "VTB"),
    ("RU", "alfabank", "Alfa-Bank"),
    ("RU", "raiffeisen", "Raiffeisenbank"),
    ("KZ", "kaspi", "Kaspi Bank"),
    ("KZ", "halyk", "Halyk Bank"),
    ("UZ", "kapitalbank", "Kapitalbank"),
    ("UZ", "uzum", "Uzum Bank"),
    ("KG", "mbank", "MBank"),
];

/// Reference data, default settings and their first publication.
pub async fn reference(state: &AppState) -> Result<(), SeedError> {
    let mut tx = state.pool.begin().await?;
    for (code, name) in COUNTRIES {
        sqlx::query(
            "INSERT INTO countries (code, name) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING",
        )
        .bind(code)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    for (code, name, country, _) in FIAT {
        sqlx::query(
            "INSERT INTO currencies (code, kind, name, scale, country_code) VALUES ($1, 'fiat', $2, 2, $3)
             ON CONFLICT (code) DO NOTHING",
        )
        .bind(code)
        .bind(name)
        .bind(country)
        .execute(&mut *tx)
        .await?;
    }
    for (i, (code, name, kind)) in METHODS.iter().enumerate() {
        sqlx::query(
            "INSERT INTO payment_methods (code, name, requisite_kind, sort_order) VALUES ($1, $2, $3, $4)
             ON CONFLICT (code) DO NOTHING",
        )
        .bind(code)
        .bind(name)
        .bind(kind)
        .bind(i as i32)
        .execute(&mut *tx)
        .await?;
    }
    for (method, fiat) in POOLS {
        sqlx::query(
            "INSERT INTO payment_method_currencies (payment_method, fiat_currency) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(method)
        .bind(fiat)
        .execute(&mut *tx)
        .await?;
    }
    for (country, code, name) in BANKS {
        sqlx::query(
            "INSERT INTO banks (country_code, code, name) VALUES ($1, $2, $3) ON CONFLICT (country_code, code) DO NOTHING",
        )
        .bind(country)
        .bind(code)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    for (code, _, _, rate) in FIAT {
        seed_rate(&mut tx, state, code, rate).await?;
    }
    for definition in SETTINGS {
        let value = (definition.default)();
        let inserted = sqlx::query(
            "INSERT INTO configuration_settings (key, value, value_type, description) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(definition.key)
        .bind(&value)
        .bind(definition.kind.value_type())
        .bind(definition.description)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            publish_setting(
                &mut tx,
                state,
                definition.key,
                definition.kind.value_type(),
                &value,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The first rate of a currency, only if it has none.
async fn seed_rate(
    tx: &mut PgConnection,
    state: &AppState,
    fiat: &str,
    rate: &str,
) -> Result<(), SeedError> {
    let rate = Decimal::from_str(rate).map_err(|e| SeedError::Invalid(e.to_string()))?;
    let inserted = sqlx::query(
        "INSERT INTO exchange_rates (fiat_currency, rate, source, observed_at)
         SELECT $1, $2, 'seed', now() WHERE NOT EXISTS (SELECT 1 FROM exchange_rates WHERE fiat_currency = $1)",
    )
    .bind(fiat)
    .bind(rate)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        let record = Rate {
            fiat_currency: fiat.to_owned(),
            rate,
            source: "seed".into(),
            observed_at: chrono::Utc::now().timestamp_millis(),
        };
        enqueue(tx, &state.schemas, RATES, fiat, Some(&record)).await?;
    }
    Ok(())
}

/// Enqueues a setting for the `settings` topic.
pub async fn publish_setting(
    tx: &mut PgConnection,
    state: &AppState,
    key: &str,
    value_type: &str,
    value: &serde_json::Value,
) -> Result<(), crate::outbox::EnqueueError> {
    let value_type = match value_type {
        "integer" => SettingType::Integer,
        "decimal" => SettingType::Decimal,
        "boolean" => SettingType::Boolean,
        "string" => SettingType::String,
        "duration_seconds" => SettingType::DurationSecs,
        _ => SettingType::Json,
    };
    let record = Setting {
        key: key.to_owned(),
        value_type,
        value_json: value.to_string(),
        updated_at: chrono::Utc::now().timestamp_millis(),
    };
    enqueue(tx, &state.schemas, SETTINGS_TOPIC, key, Some(&record)).await
}

/// The first admin, with every permission. Does nothing if the login exists.
pub async fn admin(state: &AppState, login: &str, admin_password: &str) -> Result<bool, SeedError> {
    if admin_password.len() < password::MIN_LENGTH {
        return Err(SeedError::Invalid(format!(
            "the admin password must have at least {} characters (JIVAPAY__SEED__ADMIN_PASSWORD)",
            password::MIN_LENGTH
        )));
    }
    let hash = password::hash(admin_password).map_err(|e| SeedError::Invalid(e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO users (login, password_hash, role, display_name) VALUES ($1, $2, 'admin', 'Administrator')
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(login)
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else { return Ok(false) };
    sqlx::query(
        "INSERT INTO staff_profiles (user_id, user_role, granted_permissions, role_description)
         VALUES ($1, 'admin', ARRAY['*:*:*'], 'First administrator, created by the seeder')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        Actor::System,
        audit::Entry {
            action: "user.create",
            entity_type: "user",
            entity_id: id.to_string(),
            before: None,
            after: Some(serde_json::json!({ "login": login, "role": "admin", "granted_permissions": ["*:*:*"] })),
            level: Level::Critical,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Writes one runtime setting (validated by the catalogue) and publishes it through the
/// outbox, as `PUT /api/settings/{key}` does, for tools that prepare a run before the servers
/// start (`jivapay demo`, the benchmark). Audited as the system.
pub async fn set_setting(
    state: &AppState,
    key: &str,
    value: serde_json::Value,
) -> Result<(), SeedError> {
    let definition = crate::settings_catalog::definition(key)
        .ok_or_else(|| SeedError::Invalid(format!("unknown setting {key:?}")))?;
    let value =
        crate::settings_catalog::validate(definition, &value).map_err(SeedError::Invalid)?;
    let value_type = definition.kind.value_type();
    let mut tx = state.pool.begin().await?;
    sqlx::query(
        "INSERT INTO configuration_settings AS s (key, value, value_type, description)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, value_type = EXCLUDED.value_type,
             version = s.version + 1",
    )
    .bind(definition.key)
    .bind(&value)
    .bind(value_type)
    .bind(definition.description)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        Actor::System,
        audit::Entry {
            action: "setting.update",
            entity_type: "setting",
            entity_id: definition.key.to_owned(),
            before: None,
            after: Some(serde_json::json!({ "value": value })),
            level: Level::Warning,
        },
    )
    .await?;
    publish_setting(&mut tx, state, definition.key, value_type, &value).await?;
    tx.commit().await?;
    Ok(())
}
