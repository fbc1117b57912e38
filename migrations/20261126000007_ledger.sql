-- Double-entry ledger: accounts, transfers, entries, balances.
--
-- The ledger in PostgreSQL is the projection of topic ledger.transfers, written by the ledger
-- sink. The database itself guarantees the invariants, so that no bug in any writer can corrupt
-- the books:
--   * every transfer's entries sum to zero per currency, and a transfer has exactly the entries
--     it announced (entry_count) -- checked at COMMIT by deferred constraint triggers, so the
--     transfer row and its entries can be inserted in any order within the transaction;
--   * an entry's currency is its account's currency (composite foreign key);
--   * transfers and entries are immutable: UPDATE, DELETE and TRUNCATE are refused;
--   * transfer ids are deterministic (derived from their cause by the producer), so
--     INSERT ... ON CONFLICT (id) DO NOTHING makes a replayed transfer a no-op. The sink inserts
--     the entries only when the transfer row was actually inserted (RETURNING id), and entries
--     are keyed (transfer_id, entry_no), so even a blind re-insert of entries conflicts.
-- Nothing here refuses a negative balance: overdraft is prevented upstream by the book that owns
-- the debited account (principle 3, holds), and the projection must never refuse a transfer that
-- the log of record already contains. Balances are derived and checked against the books.

CREATE TABLE ledger_accounts (
    -- The sink may use a deterministic id (UUIDv5 of owner kind, owner id, currency, kind) or
    -- look the account up by its natural key; both are unique.
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_kind  text NOT NULL CHECK (owner_kind IN ('store', 'trader', 'platform', 'external')),
    -- stores.id / traders.id; null for the platform; optional for external counterparties
    -- (the outside world money enters from and leaves to: deposits, withdrawals).
    owner_id    uuid,
    currency    text NOT NULL REFERENCES currencies (code),
    -- available: spendable store balance; hold: reserved for a pending pay-out or withdrawal;
    -- deposit: a trader's USDT deposit; fees: platform income; rewards: trader commission income
    -- kept apart from the deposit; settlement: the external side of deposits and withdrawals;
    -- suspense: temporary home of amounts under investigation (disputes, corrections).
    kind        text NOT NULL CHECK (kind IN
                    ('available', 'hold', 'deposit', 'fees', 'rewards', 'settlement', 'suspense')),
    -- Typed copies of owner_id so the owner is a real foreign key despite the polymorphic owner.
    store_id    uuid GENERATED ALWAYS AS (CASE WHEN owner_kind = 'store' THEN owner_id END) STORED
                REFERENCES stores (id),
    trader_id   uuid GENERATED ALWAYS AS (CASE WHEN owner_kind = 'trader' THEN owner_id END) STORED
                REFERENCES traders (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_accounts_owner_required
        CHECK (owner_kind NOT IN ('store', 'trader') OR owner_id IS NOT NULL),
    CONSTRAINT ledger_accounts_platform_has_no_owner
        CHECK (owner_kind <> 'platform' OR owner_id IS NULL),
    -- One account per owner, currency and kind. NULLS NOT DISTINCT (PostgreSQL 15) makes the
    -- platform's null owner_id count as one owner.
    CONSTRAINT ledger_accounts_owner_currency_kind_key
        UNIQUE NULLS NOT DISTINCT (owner_kind, owner_id, currency, kind),
    -- Target of the entries' (account_id, currency) FK: the entry's currency is the account's.
    CONSTRAINT ledger_accounts_id_currency_key UNIQUE (id, currency)
);
CREATE INDEX ledger_accounts_store_idx ON ledger_accounts (store_id) WHERE store_id IS NOT NULL;
CREATE INDEX ledger_accounts_trader_idx ON ledger_accounts (trader_id) WHERE trader_id IS NOT NULL;

CREATE TABLE ledger_transfers (
    -- Deterministic id from the producer (commissions, books). No default on purpose.
    id           uuid PRIMARY KEY,
    -- What caused the transfer: pay_in, pay_out_hold, pay_out, pay_out_release, deposit,
    -- withdrawal_hold, withdrawal, withdrawal_release, dispute_adjustment, manual_adjustment, ...
    -- Free-form (format-checked) so a new kind never stalls the sink on a schema change.
    kind         text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
    -- The order the transfer belongs to, if any. Deliberately not a foreign key: the ledger sink
    -- and the order projection sink consume independently, and the ledger must not wait for (or
    -- fail on) the projection.
    order_id     uuid,
    -- How many entries the transfer has; checked at commit. Makes "a transfer is complete and can
    -- never gain entries later" a database fact.
    entry_count  smallint NOT NULL CHECK (entry_count >= 2),
    description  text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    -- Business time of the transfer (from the event), not the sink's wall clock.
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Recording order: a total order of the journal for statements and audits.
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_transfers_seq_key UNIQUE (seq)
);
CREATE INDEX ledger_transfers_order_idx ON ledger_transfers (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX ledger_transfers_created_idx ON ledger_transfers (created_at);
CREATE INDEX ledger_transfers_kind_created_idx ON ledger_transfers (kind, created_at);

CREATE TABLE ledger_entries (
    transfer_id  uuid NOT NULL REFERENCES ledger_transfers (id),
    -- 1..entry_count within the transfer; deterministic, so re-inserting the same entries conflicts.
    entry_no     smallint NOT NULL CHECK (entry_no >= 1),
    account_id   uuid NOT NULL,
    currency     text NOT NULL,
    -- Signed: positive = credit to the account (its balance grows), negative = debit.
    amount       numeric(24,6) NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (transfer_id, entry_no),
    CONSTRAINT ledger_entries_account_currency_fkey FOREIGN KEY (account_id, currency)
        REFERENCES ledger_accounts (id, currency)
);
-- Account statements: entries of an account (join ledger_transfers for time and order).
CREATE INDEX ledger_entries_account_idx ON ledger_entries (account_id, transfer_id);

-- The zero-sum / completeness check of one transfer. Raises check_violation (SQLSTATE 23514)
-- naming constraint ledger_transfer_complete or ledger_transfer_balanced.
CREATE FUNCTION ledger_assert_transfer_balanced(p_transfer_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_expected  integer;
    v_count     bigint;
    v_max       integer;
    v_currency  text;
    v_sum       numeric;
BEGIN
    SELECT entry_count INTO v_expected FROM ledger_transfers WHERE id = p_transfer_id;
    IF NOT FOUND THEN
        RETURN;   -- cannot happen for entries (foreign key); nothing to check otherwise
    END IF;

    SELECT count(*), max(entry_no) INTO v_count, v_max
    FROM ledger_entries WHERE transfer_id = p_transfer_id;
    IF v_count <> v_expected OR v_max IS DISTINCT FROM v_expected THEN
        RAISE EXCEPTION 'ledger transfer % has % entries numbered up to %, expected entries 1..%',
                p_transfer_id, v_count, coalesce(v_max, 0), v_expected
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transfer_complete',
                  TABLE = 'ledger_transfers';
    END IF;

    SELECT currency, sum(amount) INTO v_currency, v_sum
    FROM ledger_entries WHERE transfer_id = p_transfer_id
    GROUP BY currency HAVING sum(amount) <> 0
    ORDER BY currency LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transfer % does not balance: its % entries sum to %',
                p_transfer_id, v_currency, v_sum
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transfer_balanced',
                  TABLE = 'ledger_entries';
    END IF;
END
$$;

CREATE FUNCTION ledger_entries_check_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_transfer_balanced(NEW.transfer_id);
    RETURN NULL;
END
$$;

CREATE FUNCTION ledger_transfers_check_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_transfer_balanced(NEW.id);
    RETURN NULL;
END
$$;

-- Checked at COMMIT (INITIALLY DEFERRED): inside the transaction the writer may insert the
-- transfer and its entries one statement at a time. Fires on new entries (a transfer must stay
-- balanced) and on new transfers (a transfer without its entries fails too).
CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_check_balanced();

CREATE CONSTRAINT TRIGGER ledger_transfers_balanced
    AFTER INSERT ON ledger_transfers
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_check_balanced();

-- Immutability of the journal. (ON CONFLICT DO NOTHING never reaches these: it updates nothing.)
CREATE FUNCTION ledger_forbid_mutation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation', TABLE = TG_TABLE_NAME,
              HINT = 'Correct a transfer with a new, compensating transfer.';
END
$$;

CREATE TRIGGER ledger_transfers_immutable
    BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_mutation();
CREATE TRIGGER ledger_transfers_no_truncate
    BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_mutation();
CREATE TRIGGER ledger_entries_immutable
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_mutation();
CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_mutation();

-- Accounts are never deleted and never change owner, currency or kind (entries would change
-- meaning). Columns added later (e.g. a closed flag) may still be updated.
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'ledger_accounts rows cannot be deleted'
            USING ERRCODE = 'restrict_violation', TABLE = 'ledger_accounts';
    END IF;
    IF (NEW.id, NEW.owner_kind, NEW.owner_id, NEW.currency, NEW.kind)
       IS DISTINCT FROM (OLD.id, OLD.owner_kind, OLD.owner_id, OLD.currency, OLD.kind) THEN
        RAISE EXCEPTION 'ledger account % cannot change its id, owner, currency or kind', OLD.id
            USING ERRCODE = 'restrict_violation', TABLE = 'ledger_accounts';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_accounts_guard
    BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();
CREATE TRIGGER ledger_accounts_no_truncate
    BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_accounts_guard();

-- Current balance per account, maintained by the ledger sink in the same transaction as the
-- entries it applies (balance = sum of the account's entries; version = number of transfers
-- applied to the account). Derived data: ledger_balance_discrepancies must always be empty.
CREATE TABLE ledger_balances (
    account_id        uuid PRIMARY KEY,
    currency          text NOT NULL,
    balance           numeric(24,6) NOT NULL DEFAULT 0,
    version           bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    last_transfer_id  uuid REFERENCES ledger_transfers (id),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_balances_account_fkey FOREIGN KEY (account_id, currency)
        REFERENCES ledger_accounts (id, currency)
);

-- Accounts whose maintained balance differs from the sum of their journal entries (should be
-- empty; a reconciliation job and the tests check it).
CREATE VIEW ledger_balance_discrepancies AS
    SELECT a.id AS account_id,
           a.owner_kind, a.owner_id, a.currency, a.kind,
           coalesce(b.balance, 0) AS maintained_balance,
           coalesce(e.total, 0)   AS journal_balance
    FROM ledger_accounts a
    LEFT JOIN ledger_balances b ON b.account_id = a.id
    LEFT JOIN (SELECT account_id, sum(amount) AS total
               FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
    WHERE coalesce(b.balance, 0) <> coalesce(e.total, 0);
