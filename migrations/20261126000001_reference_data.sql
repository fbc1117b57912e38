-- Reference data: countries, currencies, payment methods and their pools, banks, exchange rates.
--
-- Conventions used by every JivaPay migration (see docs/database.md):
--   * surrogate keys are uuid; reference data is keyed by its natural code instead (ISO country and
--     currency codes, payment method codes) because those codes travel in Kafka keys and Avro
--     records (a router pool is "fiat + payment method") and must read the same everywhere;
--   * statuses and kinds are text with CHECK constraints (easier to evolve than enums: a new value
--     is one ALTER ... DROP/ADD CONSTRAINT, inside a transaction);
--   * fiat money is numeric(20,2), USDT numeric(24,6), rates (fiat per USDT) numeric(20,8);
--   * time is timestamptz.

-- Keeps updated_at current on master-data tables. It only stamps now() when the statement did not
-- set updated_at itself, so code (and tests) that take "now" from an explicit clock stay in charge.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TABLE countries (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z]{2}$'),          -- ISO 3166-1 alpha-2
    name        text NOT NULL CHECK (btrim(name) <> ''),
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER countries_set_updated_at BEFORE UPDATE ON countries
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One table for every currency the platform knows. Fiat currencies are what customers pay in;
-- crypto currencies (USDT) are what deposits, balances and the ledger are kept in. Fiat scale is
-- at most 2 because every fiat column is numeric(20,2); crypto scale at most 6 for the same reason
-- (ledger columns are numeric(24,6)). `fiat_currencies` below is the fiat-only view.
CREATE TABLE currencies (
    code          text PRIMARY KEY CHECK (code ~ '^[A-Z]{3,5}$'),      -- ISO 4217 or ticker
    kind          text NOT NULL CHECK (kind IN ('fiat', 'crypto')),
    name          text NOT NULL CHECK (btrim(name) <> ''),
    scale         smallint NOT NULL,
    -- The issuing country of a fiat currency (null for currencies shared by several countries).
    country_code  text REFERENCES countries (code),
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT currencies_scale_check CHECK (
        (kind = 'fiat' AND scale BETWEEN 0 AND 2) OR (kind = 'crypto' AND scale BETWEEN 0 AND 6)),
    CONSTRAINT currencies_country_only_fiat CHECK (kind = 'fiat' OR country_code IS NULL)
);
CREATE INDEX currencies_country_code_idx ON currencies (country_code);
CREATE TRIGGER currencies_set_updated_at BEFORE UPDATE ON currencies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- USDT is structural, not demo data: ledger accounts, orders and rates default to it.
INSERT INTO currencies (code, kind, name, scale) VALUES ('USDT', 'crypto', 'Tether USD', 6);

CREATE VIEW fiat_currencies AS
    SELECT code, name, scale, country_code, is_active, created_at, updated_at
    FROM currencies
    WHERE kind = 'fiat';

-- Payment methods: how fiat moves between customer and trader (sbp, card2card, account, ...).
CREATE TABLE payment_methods (
    code            text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    name            text NOT NULL CHECK (btrim(name) <> ''),
    -- The kind of requisite this method normally pays to (sbp -> phone, card2card -> card);
    -- null when several kinds are accepted. A hint for the UI and validation, not a constraint.
    requisite_kind  text CHECK (requisite_kind IN ('card', 'phone', 'account')),
    sort_order      integer NOT NULL DEFAULT 0,
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER payment_methods_set_updated_at BEFORE UPDATE ON payment_methods
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A pool = fiat currency + payment method: the unit the router is keyed by (topic
-- orders.screened). Requisites must belong to a configured pool; optional per-pool order bounds
-- are the platform-wide limits a store's order must fit before any requisite is considered.
CREATE TABLE payment_method_currencies (
    payment_method  text NOT NULL REFERENCES payment_methods (code),
    fiat_currency   text NOT NULL REFERENCES currencies (code),
    min_amount      numeric(20,2) CHECK (min_amount > 0),
    max_amount      numeric(20,2) CHECK (max_amount > 0),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_method, fiat_currency),
    CONSTRAINT payment_method_currencies_bounds_check
        CHECK (min_amount IS NULL OR max_amount IS NULL OR min_amount <= max_amount)
);
CREATE INDEX payment_method_currencies_fiat_idx ON payment_method_currencies (fiat_currency);
CREATE TRIGGER payment_method_currencies_set_updated_at BEFORE UPDATE ON payment_method_currencies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE banks (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    country_code  text NOT NULL REFERENCES countries (code),
    code          text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),   -- e.g. 'sberbank'
    name          text NOT NULL CHECK (btrim(name) <> ''),
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT banks_country_code_key UNIQUE (country_code, code)
);
CREATE TRIGGER banks_set_updated_at BEFORE UPDATE ON banks
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Exchange-rate history: every observation is kept (orders freeze the rate they used, and disputes
-- and statistics need to know what the rate was at a given time). Rows are never updated; a
-- correction is a newer observation. The rate is fiat units per 1 crypto unit (RUB per USDT).
CREATE TABLE exchange_rates (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    fiat_currency    text NOT NULL REFERENCES currencies (code),
    crypto_currency  text NOT NULL DEFAULT 'USDT' REFERENCES currencies (code),
    rate             numeric(20,8) NOT NULL CHECK (rate > 0),
    source           text NOT NULL CHECK (source ~ '^[a-z][a-z0-9_.-]{0,63}$'),  -- 'manual', 'bybit_p2p'
    observed_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       uuid,   -- users(id) for manual rates; FK added by the people migration
    CONSTRAINT exchange_rates_distinct_currencies CHECK (fiat_currency <> crypto_currency),
    -- The same observation fetched twice is one row (rate pollers can insert ON CONFLICT DO NOTHING).
    CONSTRAINT exchange_rates_observation_key
        UNIQUE (fiat_currency, crypto_currency, source, observed_at)
);
-- Serves "latest rate per pair" and history charts.
CREATE INDEX exchange_rates_pair_observed_idx
    ON exchange_rates (fiat_currency, crypto_currency, observed_at DESC, created_at DESC);

-- The current rate of each pair: the latest observation, whatever its source.
CREATE VIEW current_exchange_rates AS
    SELECT DISTINCT ON (fiat_currency, crypto_currency)
           id, fiat_currency, crypto_currency, rate, source, observed_at, created_at, created_by
    FROM exchange_rates
    ORDER BY fiat_currency, crypto_currency, observed_at DESC, created_at DESC;
