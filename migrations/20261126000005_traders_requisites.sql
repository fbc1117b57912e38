-- Teams, traders, trader commissions and requisites.
--
-- A trader's deposit, holds and requisite usage counters are NOT columns here: the trader book
-- (Kafka processor keyed by trader) is authoritative for them, and the ledger (ledger_balances)
-- is their projection in PostgreSQL. These tables are master data written by the management API
-- and published through the outbox (topic `traders`).

CREATE TABLE teams (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text NOT NULL CHECK (btrim(name) <> ''),
    -- The team lead is a user with role 'team_lead' (role-pinned FK). A team may briefly have no
    -- lead (between a lead leaving and a new one being named).
    team_lead_user_id  uuid,
    team_lead_role     text NOT NULL DEFAULT 'team_lead' CHECK (team_lead_role = 'team_lead'),
    is_active          boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT teams_name_key UNIQUE (name),
    CONSTRAINT teams_team_lead_fkey FOREIGN KEY (team_lead_user_id, team_lead_role)
        REFERENCES users (id, role) ON UPDATE CASCADE
);
CREATE INDEX teams_team_lead_idx ON teams (team_lead_user_id);
CREATE TRIGGER teams_set_updated_at BEFORE UPDATE ON teams
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE traders (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    user_role   text NOT NULL DEFAULT 'trader' CHECK (user_role = 'trader'),
    team_id     uuid REFERENCES teams (id),
    -- Requisite selection orders candidates by priority ascending (0 = first), then least
    -- recently used.
    priority    integer NOT NULL DEFAULT 100 CHECK (priority >= 0),
    -- The trader's own "I am working now" switch.
    is_in_work  boolean NOT NULL DEFAULT false,
    -- The team lead's switch: a team lead can stop a trader's traffic without touching his account.
    is_traffic_enabled_by_teamlead boolean NOT NULL DEFAULT true,
    -- Staff switch: an inactive trader gets no orders and cannot switch himself into work.
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT traders_user_id_key UNIQUE (user_id),
    CONSTRAINT traders_user_fkey FOREIGN KEY (user_id, user_role)
        REFERENCES users (id, role) ON UPDATE CASCADE
);
CREATE INDEX traders_team_idx ON traders (team_id);
CREATE TRIGGER traders_set_updated_at BEFORE UPDATE ON traders
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- What a trader earns, per payment method and direction, in percent of the order's crypto amount
-- (pay-in reward C*t_in; pay-out credit C*(1 + t_out)). allow_loss: see store_commissions.
CREATE TABLE trader_commissions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    trader_id       uuid NOT NULL REFERENCES traders (id),
    payment_method  text NOT NULL REFERENCES payment_methods (code),
    direction       text NOT NULL CHECK (direction IN ('pay_in', 'pay_out')),
    percent         numeric(7,4) NOT NULL CHECK (percent >= 0 AND percent <= 100),
    allow_loss      boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid REFERENCES users (id),
    CONSTRAINT trader_commissions_owner_method_direction_key
        UNIQUE (trader_id, payment_method, direction)
);
CREATE TRIGGER trader_commissions_set_updated_at BEFORE UPDATE ON trader_commissions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Requisites: a trader's card, phone (SBP) or bank account that customers pay to (pay-in) or that
-- the trader pays from (pay-out).
--
-- The number is encrypted at rest by the application (number_ciphertext). For display only the
-- first 6 / last 4 characters are kept in clear; number_hash is a keyed hash (HMAC-SHA-256 with a
-- server key) of the normalised number, so "is this card already registered?" is an index lookup
-- without decrypting anything and without a reversible plain hash of a 16-digit card number.
--
-- Limits: null means "no limit"; when set they must be positive. Usage against the limits (daily
-- and monthly turnover and counts, last use) is counted by the trader book, not here.
CREATE TABLE requisites (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    trader_id               uuid NOT NULL REFERENCES traders (id),
    payment_method          text NOT NULL,
    fiat_currency           text NOT NULL,
    bank_id                 uuid REFERENCES banks (id),
    kind                    text NOT NULL CHECK (kind IN ('card', 'phone', 'account')),
    number_ciphertext       bytea NOT NULL CHECK (octet_length(number_ciphertext) > 0),
    number_first6           text CHECK (number_first6 ~ '^[0-9A-Za-z+]{1,6}$'),
    number_last4            text NOT NULL CHECK (number_last4 ~ '^[0-9A-Za-z]{1,4}$'),
    number_hash             bytea NOT NULL CHECK (octet_length(number_hash) = 32),
    holder_name             text NOT NULL CHECK (btrim(holder_name) <> ''),
    is_pay_in_enabled       boolean NOT NULL DEFAULT true,
    is_pay_out_enabled      boolean NOT NULL DEFAULT false,
    -- Per-order bounds, in the requisite's fiat currency.
    min_amount              numeric(20,2) NOT NULL CHECK (min_amount > 0),
    max_amount              numeric(20,2) NOT NULL CHECK (max_amount > 0),
    daily_turnover_limit    numeric(20,2) CHECK (daily_turnover_limit > 0),
    monthly_turnover_limit  numeric(20,2) CHECK (monthly_turnover_limit > 0),
    daily_count_limit       integer CHECK (daily_count_limit > 0),
    monthly_count_limit     integer CHECK (monthly_count_limit > 0),
    -- Minimum pause between two orders on this requisite (banks flag bursts of transfers).
    min_interval_seconds    integer NOT NULL DEFAULT 0 CHECK (min_interval_seconds >= 0),
    moderation_status       text NOT NULL DEFAULT 'pending'
                            CHECK (moderation_status IN ('pending', 'approved', 'rejected', 'blocked')),
    moderated_by            uuid REFERENCES users (id),
    moderated_at            timestamptz,
    moderation_reason       text,
    -- The trader's on/off switch. Selection needs is_active AND moderation_status = 'approved'.
    is_active               boolean NOT NULL DEFAULT true,
    -- Soft delete: a requisite that served orders is never deleted (orders reference it).
    archived_at             timestamptz,
    -- Informational copy of the last assignment time, written by the order projection; the
    -- trader book's own value is the one selection uses.
    last_assigned_at        timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- A requisite belongs to a configured pool (fiat + method).
    CONSTRAINT requisites_pool_fkey FOREIGN KEY (payment_method, fiat_currency)
        REFERENCES payment_method_currencies (payment_method, fiat_currency),
    -- Target of orders' (requisite_id, trader_id) FK: an order's requisite is its trader's.
    CONSTRAINT requisites_id_trader_key UNIQUE (id, trader_id),
    CONSTRAINT requisites_amount_bounds_check CHECK (min_amount <= max_amount),
    CONSTRAINT requisites_turnover_limits_check CHECK (
        daily_turnover_limit IS NULL OR monthly_turnover_limit IS NULL
        OR daily_turnover_limit <= monthly_turnover_limit),
    CONSTRAINT requisites_count_limits_check CHECK (
        daily_count_limit IS NULL OR monthly_count_limit IS NULL
        OR daily_count_limit <= monthly_count_limit),
    CONSTRAINT requisites_moderation_check CHECK (
        moderation_status = 'pending'
        OR (moderated_at IS NOT NULL
            AND (moderation_status = 'approved' OR btrim(coalesce(moderation_reason, '')) <> '')))
);
-- One number, one live requisite per payment method, across all traders: a card cannot be
-- registered twice (by the same or another trader). Archived and rejected rows do not count, so a
-- rejected number can be resubmitted; a blocked one cannot.
CREATE UNIQUE INDEX requisites_number_live_key ON requisites (number_hash, payment_method)
    WHERE archived_at IS NULL AND moderation_status <> 'rejected';
-- Any-state lookup by number (fraud checks, "was this card ever blocked?").
CREATE INDEX requisites_number_hash_idx ON requisites (number_hash);
CREATE INDEX requisites_trader_idx ON requisites (trader_id);
CREATE INDEX requisites_bank_idx ON requisites (bank_id);
-- The selectable set per pool (rebuilding router tables, admin views of capacity).
CREATE INDEX requisites_selectable_idx ON requisites (fiat_currency, payment_method, trader_id)
    WHERE is_active AND moderation_status = 'approved' AND archived_at IS NULL;
-- The moderation queue.
CREATE INDEX requisites_pending_moderation_idx ON requisites (created_at)
    WHERE moderation_status = 'pending' AND archived_at IS NULL;
CREATE TRIGGER requisites_set_updated_at BEFORE UPDATE ON requisites
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
