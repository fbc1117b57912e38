-- Merchants, their stores, store API keys and store commissions.
-- A store's balance is not a column: it is derived from the ledger (ledger_balances).

CREATE TABLE merchants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The merchant's login. Role-pinned: the user must have role 'merchant' (see users_id_role_key).
    user_id     uuid NOT NULL,
    user_role   text NOT NULL DEFAULT 'merchant' CHECK (user_role = 'merchant'),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    contact_email text,
    is_enabled  boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT merchants_user_id_key UNIQUE (user_id),
    CONSTRAINT merchants_user_fkey FOREIGN KEY (user_id, user_role)
        REFERENCES users (id, role) ON UPDATE CASCADE
);
CREATE TRIGGER merchants_set_updated_at BEFORE UPDATE ON merchants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE stores (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id     uuid NOT NULL REFERENCES merchants (id),
    name            text NOT NULL CHECK (btrim(name) <> ''),
    -- Default callback URL; an order may carry its own.
    callback_url    text CHECK (callback_url ~ '^https?://'),
    -- Default return URLs of the hosted payment page; an order may carry its own.
    success_url     text CHECK (success_url ~ '^https?://'),
    fail_url        text CHECK (fail_url ~ '^https?://'),
    -- Callback signing secrets, encrypted by the application (ciphertext as text, e.g. base64 of
    -- nonce||ciphertext); the database never sees a plain secret. During rotation two secrets are
    -- valid: the current one signs, the previous one is still accepted/sent until it expires.
    signing_secret_encrypted           text NOT NULL CHECK (signing_secret_encrypted <> ''),
    previous_signing_secret_encrypted  text CHECK (previous_signing_secret_encrypted <> ''),
    previous_signing_secret_expires_at timestamptz,
    signing_secret_rotated_at          timestamptz,
    is_enabled          boolean NOT NULL DEFAULT true,
    pay_in_enabled      boolean NOT NULL DEFAULT true,
    pay_out_enabled     boolean NOT NULL DEFAULT true,
    -- Set by the callback sink when the endpoint kept failing; cleared by staff or the merchant.
    -- While set, deliveries are recorded but not attempted.
    callbacks_disabled_at      timestamptz,
    callbacks_disabled_reason  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stores_merchant_name_key UNIQUE (merchant_id, name),
    CONSTRAINT stores_previous_secret_check CHECK (
        (previous_signing_secret_encrypted IS NULL) = (previous_signing_secret_expires_at IS NULL))
);
CREATE TRIGGER stores_set_updated_at BEFORE UPDATE ON stores
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Gateway API keys. Only a hash is stored: keys are long random strings, so SHA-256 of the key is
-- enough (no slow hash needed) and lets the gateway find the key by its hash in one index probe.
-- The prefix (first characters of the key) is shown in the UI so people can tell keys apart.
CREATE TABLE store_api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    store_id      uuid NOT NULL REFERENCES stores (id),
    name          text NOT NULL DEFAULT '',
    key_prefix    text NOT NULL CHECK (char_length(key_prefix) BETWEEN 4 AND 32),
    key_hash      bytea NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    uuid REFERENCES users (id),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    revoked_by    uuid REFERENCES users (id),
    last_used_at  timestamptz,
    CONSTRAINT store_api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT store_api_keys_key_prefix_key UNIQUE (key_prefix),
    CONSTRAINT store_api_keys_revoked_by_check CHECK (revoked_by IS NULL OR revoked_at IS NOT NULL)
);
CREATE INDEX store_api_keys_active_by_store_idx ON store_api_keys (store_id) WHERE revoked_at IS NULL;
CREATE INDEX store_api_keys_store_idx ON store_api_keys (store_id);

-- What the platform charges a store, per payment method and direction, in percent of the order's
-- crypto amount (pay-in: store gets C*(1 - s_in); pay-out: store pays C*(1 + s_out)).
-- allow_loss: the admin API refuses a commission that would make the platform margin
-- (store percent - trader percent) negative for the same method and direction, unless the row
-- being saved carries allow_loss = true, set by an admin on purpose.
CREATE TABLE store_commissions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    store_id        uuid NOT NULL REFERENCES stores (id),
    payment_method  text NOT NULL REFERENCES payment_methods (code),
    direction       text NOT NULL CHECK (direction IN ('pay_in', 'pay_out')),
    percent         numeric(7,4) NOT NULL CHECK (percent >= 0 AND percent <= 100),
    allow_loss      boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid REFERENCES users (id),
    CONSTRAINT store_commissions_owner_method_direction_key
        UNIQUE (store_id, payment_method, direction)
);
CREATE TRIGGER store_commissions_set_updated_at BEFORE UPDATE ON store_commissions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
