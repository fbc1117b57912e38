//! The ledger sink: `ledger.transfers` → the double-entry journal and balances in PostgreSQL.
//! Key: order id (or transfer id). Guarantee: each transfer is written once (by its
//! deterministic id), with its entries and the balance updates, in the transaction that also
//! stores the consumed offset. The database itself refuses a transfer whose entries do not sum
//! to zero per currency.

use crate::runtime::Sink;
use jivapay_schemas::records::{AccountKind, AccountOwnerKind, LedgerTransfer, TransferKind};
use sqlx::PgConnection;
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

impl Sink<LedgerTransfer> for LedgerSink {
    async fn write<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        transfer: &'a LedgerTransfer,
    ) -> sqlx::Result<()> {
        let created_at =
            chrono::DateTime::from_timestamp_millis(transfer.created_at).unwrap_or_default();
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO ledger_transfers (id, kind, order_id, entry_count, description, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(transfer.transfer_id)
        .bind(kind(transfer.kind))
        .bind(transfer.order_id)
        .bind(transfer.entries.len() as i16)
        .bind(&transfer.description)
        .bind(created_at)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            return Ok(()); // already in the journal: a replay
        }
        for (n, entry) in transfer.entries.iter().enumerate() {
            let account: Uuid = sqlx::query_scalar(
                "INSERT INTO ledger_accounts (owner_kind, owner_id, currency, kind) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (owner_kind, owner_id, currency, kind) DO UPDATE SET currency = EXCLUDED.currency
                 RETURNING id",
            )
            .bind(owner_kind(entry.owner_kind))
            .bind(entry.owner_id)
            .bind(&entry.currency)
            .bind(account_kind(entry.account_kind))
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO ledger_entries (transfer_id, entry_no, account_id, currency, amount) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(transfer.transfer_id)
            .bind(n as i16 + 1)
            .bind(account)
            .bind(&entry.currency)
            .bind(entry.amount)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO ledger_balances (account_id, currency, balance, version, last_transfer_id)
                 VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (account_id) DO UPDATE SET balance = ledger_balances.balance + EXCLUDED.balance,
                     version = ledger_balances.version + 1, last_transfer_id = EXCLUDED.last_transfer_id,
                     updated_at = now()",
            )
            .bind(account)
            .bind(&entry.currency)
            .bind(entry.amount)
            .bind(transfer.transfer_id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}
