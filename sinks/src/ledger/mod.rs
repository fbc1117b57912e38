//! The ledger sink: `ledger.transfers` → the double-entry journal and balances in PostgreSQL.
//! Key: order id (or transfer id). Guarantee: each transfer is written once (by its
//! deterministic id), with its entries and the balance updates, in the transaction that also
//! stores the consumed offset. The database itself refuses a transfer whose entries do not sum
//! to zero per currency.

use crate::runtime::Sink;
use jivapay_schemas::records::{
    AccountKind, AccountOwnerKind, LedgerEntry, LedgerTransfer, TransferKind,
};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;

pub struct LedgerSink;

fn kind(kind: TransferKind) -> &'static str {
    match kind {
        TransferKind::PayIn => "pay_in",
        TransferKind::PayOut => "pay_out",
        TransferKind::Deposit => "deposit",
        TransferKind::Withdrawal => "withdrawal",
        TransferKind::DisputeResolution => "dispute_resolution",
        TransferKind::Adjustment => "adjustment",
    }
}

fn owner_kind(kind: AccountOwnerKind) -> &'static str {
    match kind {
        AccountOwnerKind::Store => "store",
        AccountOwnerKind::Trader => "trader",
        AccountOwnerKind::Platform => "platform",
        AccountOwnerKind::External => "external",
    }
}

fn account_kind(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::Available => "available",
        AccountKind::Hold => "hold",
        AccountKind::Fees => "fees",
        AccountKind::Settlement => "settlement",
    }
}

/// An account by its natural key: owner kind, owner (none for the platform), currency, kind.
type AccountKey = (&'static str, Option<Uuid>, String, &'static str);

fn account_key(entry: &LedgerEntry) -> AccountKey {
    (
        owner_kind(entry.owner_kind),
        entry.owner_id,
        entry.currency.clone(),
        account_kind(entry.account_kind),
    )
}

impl Sink<LedgerTransfer> for LedgerSink {
    /// Four statements per batch, whatever its size: the transfers (those not yet journaled
    /// go on), their accounts, their entries, and the balance changes summed per account.
    async fn write_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        transfers: &'a [&'a LedgerTransfer],
    ) -> sqlx::Result<()> {
        let fresh = insert_transfers(tx, transfers).await?;
        if fresh.is_empty() {
            return Ok(()); // all already in the journal: a replay
        }
        let accounts = upsert_accounts(tx, &fresh).await?;
        insert_entries(tx, &fresh, &accounts).await?;
        apply_balances(tx, &fresh, &accounts).await
    }
}

/// Journals the transfers not journaled yet (by id) and returns them, in batch order.
async fn insert_transfers<'a>(
    tx: &mut PgConnection,
    transfers: &[&'a LedgerTransfer],
) -> sqlx::Result<Vec<&'a LedgerTransfer>> {
    let mut seen = HashSet::new();
    let unique: Vec<&LedgerTransfer> = transfers
        .iter()
        .copied()
        .filter(|t| seen.insert(t.transfer_id))
        .collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO ledger_transfers (id, kind, order_id, entry_count, description, created_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::smallint[], $5::text[], $6::timestamptz[])
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(unique.iter().map(|t| t.transfer_id).collect::<Vec<_>>())
    .bind(unique.iter().map(|t| kind(t.kind)).collect::<Vec<_>>())
    .bind(unique.iter().map(|t| t.order_id).collect::<Vec<_>>())
    .bind(unique.iter().map(|t| t.entries.len() as i16).collect::<Vec<_>>())
    .bind(unique.iter().map(|t| t.description.clone()).collect::<Vec<_>>())
    .bind(
        unique
            .iter()
            .map(|t| chrono::DateTime::from_timestamp_millis(t.created_at).unwrap_or_default())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let inserted: HashSet<Uuid> = inserted.into_iter().collect();
    Ok(unique
        .into_iter()
        .filter(|t| inserted.contains(&t.transfer_id))
        .collect())
}

/// The ids of the accounts the transfers touch, created on first use.
async fn upsert_accounts(
    tx: &mut PgConnection,
    transfers: &[&LedgerTransfer],
) -> sqlx::Result<HashMap<AccountKey, Uuid>> {
    let keys: BTreeSet<AccountKey> = transfers
        .iter()
        .flat_map(|t| t.entries.iter().map(account_key))
        .collect();
    // DO UPDATE (a no-op) rather than DO NOTHING, so existing accounts are returned too.
    let rows: Vec<(Uuid, String, Option<Uuid>, String, String)> = sqlx::query_as(
        "INSERT INTO ledger_accounts (owner_kind, owner_id, currency, kind)
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[])
         ON CONFLICT (owner_kind, owner_id, currency, kind) DO UPDATE SET currency = EXCLUDED.currency
         RETURNING id, owner_kind, owner_id, currency, kind",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2.clone()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.3).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut ids = HashMap::new();
    for (id, owner, owner_id, currency, kind) in rows {
        // The returned names are ours; find the static strings they came from.
        if let Some(key) = keys
            .iter()
            .find(|k| k.0 == owner && k.1 == owner_id && k.2 == currency && k.3 == kind)
        {
            ids.insert(key.clone(), id);
        }
    }
    Ok(ids)
}

fn account_of(accounts: &HashMap<AccountKey, Uuid>, entry: &LedgerEntry) -> sqlx::Result<Uuid> {
    accounts
        .get(&account_key(entry))
        .copied()
        .ok_or_else(|| sqlx::Error::Protocol("a ledger account was not returned".into()))
}

async fn insert_entries(
    tx: &mut PgConnection,
    transfers: &[&LedgerTransfer],
    accounts: &HashMap<AccountKey, Uuid>,
) -> sqlx::Result<()> {
    let (mut transfer_ids, mut numbers, mut account_ids, mut currencies, mut amounts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for transfer in transfers {
        for (n, entry) in transfer.entries.iter().enumerate() {
            transfer_ids.push(transfer.transfer_id);
            numbers.push(n as i16 + 1);
            account_ids.push(account_of(accounts, entry)?);
            currencies.push(entry.currency.clone());
            amounts.push(entry.amount);
        }
    }
    sqlx::query(
        "INSERT INTO ledger_entries (transfer_id, entry_no, account_id, currency, amount)
         SELECT * FROM UNNEST($1::uuid[], $2::smallint[], $3::uuid[], $4::text[], $5::numeric[])",
    )
    .bind(transfer_ids)
    .bind(numbers)
    .bind(account_ids)
    .bind(currencies)
    .bind(amounts)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds each account's entries of the batch to its balance in one row per account (a row
/// cannot be updated twice by one statement); `version` counts the entries applied.
async fn apply_balances(
    tx: &mut PgConnection,
    transfers: &[&LedgerTransfer],
    accounts: &HashMap<AccountKey, Uuid>,
) -> sqlx::Result<()> {
    struct Change {
        currency: String,
        amount: Decimal,
        entries: i64,
        last_transfer: Uuid,
    }
    let mut changes: BTreeMap<Uuid, Change> = BTreeMap::new();
    for transfer in transfers {
        for entry in &transfer.entries {
            let change = changes
                .entry(account_of(accounts, entry)?)
                .or_insert_with(|| Change {
                    currency: entry.currency.clone(),
                    amount: Decimal::ZERO,
                    entries: 0,
                    last_transfer: transfer.transfer_id,
                });
            change.amount += entry.amount;
            change.entries += 1;
            change.last_transfer = transfer.transfer_id;
        }
    }
    sqlx::query(
        "INSERT INTO ledger_balances (account_id, currency, balance, version, last_transfer_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::numeric[], $4::bigint[], $5::uuid[])
         ON CONFLICT (account_id) DO UPDATE SET balance = ledger_balances.balance + EXCLUDED.balance,
             version = ledger_balances.version + EXCLUDED.version,
             last_transfer_id = EXCLUDED.last_transfer_id, updated_at = now()",
    )
    .bind(changes.keys().copied().collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.currency.clone()).collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.amount).collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.entries).collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.last_transfer).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
