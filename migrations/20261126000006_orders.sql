-- Orders projection, order event history, payment sessions, receipts and disputes.
--
-- Kafka (topic orders.events) is the log of record for orders; these tables are a projection
-- written by the projection sink, for queries, the payment page and statistics. The sink applies
-- an event only if it is newer than what the row holds (version), in the same transaction as its
-- consumed offsets (sink_offsets), so replays are harmless.
--
-- Order statuses (pay-in / pay-out):
--   created          accepted by ingest (payment URL issued), waiting for screening and a requisite
--                    (pay-out: store balance held)
--   review           fraud screening asked for manual review (or the amount is missing)
--   assigned         a trader requisite is assigned (pay-in: waiting for the customer's payment;
--                    pay-out: waiting for the trader to pay the customer)
--   client_confirmed pay-in: the customer says he has paid; waiting for the trader
--   trader_paid      pay-out: the trader says he has paid the customer (proof uploaded)
--   disputed         a dispute is open
--   completed        money moved; ledger transfer posted                         (terminal)
--   cancelled        cancelled by the store, customer, trader or staff           (terminal)
--   expired          a deadline passed                                           (terminal)
--   rejected         denied by fraud screening                                   (terminal)
--   no_requisite     no eligible requisite was left for it                       (terminal)
--   failed           could not be served for another reason                      (terminal)
-- reason_code says why an order ended in cancelled/expired/rejected/failed.

CREATE TABLE orders (
    -- Deterministic: UUIDv5 of (store id, external order id), computed by ingest. No default on
    -- purpose: an id made up here would break deduplication.
    id                  uuid PRIMARY KEY,
    store_id            uuid NOT NULL REFERENCES stores (id),
    external_order_id   text NOT NULL CHECK (char_length(external_order_id) BETWEEN 1 AND 128),
    direction           text NOT NULL CHECK (direction IN ('pay_in', 'pay_out')),
    status              text NOT NULL CONSTRAINT orders_status_check CHECK (status IN (
                            'created', 'review', 'assigned', 'client_confirmed',
                            'trader_paid', 'disputed', 'completed', 'cancelled', 'expired',
                            'rejected', 'no_requisite', 'failed')),
    previous_status     text CONSTRAINT orders_previous_status_check CHECK (previous_status IN (
                            'created', 'review', 'assigned', 'client_confirmed',
                            'trader_paid', 'disputed', 'completed', 'cancelled', 'expired',
                            'rejected', 'no_requisite', 'failed')),
    -- Null only while in review for a missing amount (fraud: no amount → review).
    fiat_amount         numeric(20,2) CHECK (fiat_amount > 0),
    fiat_currency       text NOT NULL REFERENCES currencies (code),
    crypto_currency     text NOT NULL DEFAULT 'USDT' REFERENCES currencies (code),
    -- Fixed when the order is screened/assigned: crypto_amount = fiat_amount / rate.
    crypto_amount       numeric(24,6) CHECK (crypto_amount > 0),
    rate                numeric(20,8) CHECK (rate > 0),
    payment_method      text NOT NULL REFERENCES payment_methods (code),
    trader_id           uuid REFERENCES traders (id),
    requisite_id        uuid,
    -- The store's identifier of its customer (fraud velocity, support search).
    customer_id         text CHECK (char_length(customer_id) <= 256),
    callback_url        text CHECK (callback_url ~ '^https?://'),
    success_url         text CHECK (success_url ~ '^https?://'),
    fail_url            text CHECK (fail_url ~ '^https?://'),
    fraud_verdict       text CHECK (fraud_verdict IN ('allow', 'review', 'deny')),
    -- Commission percentages the order was priced with (snapshots; commissions may change later).
    store_commission_percent   numeric(7,4) CHECK (store_commission_percent BETWEEN 0 AND 100),
    trader_commission_percent  numeric(7,4) CHECK (trader_commission_percent BETWEEN 0 AND 100),
    reason_code         text CHECK (reason_code ~ '^[a-z][a-z0-9_]*$'),     -- 'no_requisite', 'fraud_denied', ...
    -- Bearer token of the hosted payment page URL (unique: the page looks the order up by it).
    payment_token       text CHECK (char_length(payment_token) BETWEEN 16 AND 128),
    created_at               timestamptz NOT NULL,
    assigned_at              timestamptz,
    client_confirmed_at      timestamptz,
    trader_paid_at           timestamptz,
    completed_at             timestamptz,
    -- When the order reached any terminal status (completed, cancelled, expired, rejected,
    -- no_requisite, failed).
    closed_at                timestamptz,
    -- Deadlines, stored so the owning partition (and support) can see them; fired by the trader book.
    expires_at               timestamptz,
    trader_confirm_deadline  timestamptz,
    -- Time of the last applied event (event time, not wall-clock of the sink).
    updated_at          timestamptz NOT NULL,
    -- Idempotent projection: the sink updates a row only WHERE version < the event's version, and
    -- remembers which event produced the current state.
    last_event_id       uuid NOT NULL,
    version             bigint NOT NULL CHECK (version >= 1),
    projected_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_store_external_id_key UNIQUE (store_id, external_order_id),
    CONSTRAINT orders_payment_token_key UNIQUE (payment_token),
    -- The requisite must be the assigned trader's own.
    CONSTRAINT orders_requisite_fkey FOREIGN KEY (requisite_id, trader_id)
        REFERENCES requisites (id, trader_id),
    CONSTRAINT orders_requisite_needs_trader CHECK (requisite_id IS NULL OR trader_id IS NOT NULL),
    CONSTRAINT orders_rate_and_amount_together CHECK ((crypto_amount IS NULL) = (rate IS NULL)),
    CONSTRAINT orders_currencies_distinct CHECK (fiat_currency <> crypto_currency),
    -- From assignment on, an order has a requisite and a priced crypto amount.
    CONSTRAINT orders_assigned_has_requisite CHECK (
        status NOT IN ('assigned', 'client_confirmed', 'trader_paid', 'completed')
        OR (requisite_id IS NOT NULL AND crypto_amount IS NOT NULL)),
    CONSTRAINT orders_closed_at_check CHECK (
        (status IN ('completed', 'cancelled', 'expired', 'rejected', 'no_requisite', 'failed')) = (closed_at IS NOT NULL)),
    CONSTRAINT orders_completed_at_check CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
-- Open orders on a requisite: capacity views, "is this card busy?", support. Partial, so it stays
-- small however many closed orders accumulate.
CREATE INDEX orders_open_by_requisite_idx ON orders (requisite_id, created_at)
    WHERE status IN ('assigned', 'client_confirmed', 'trader_paid', 'disputed');
CREATE INDEX orders_open_by_trader_idx ON orders (trader_id, created_at)
    WHERE status IN ('assigned', 'client_confirmed', 'trader_paid', 'disputed');
-- Open orders by deadline (support dashboards; a check that no deadline is long overdue).
CREATE INDEX orders_open_expires_idx ON orders (expires_at)
    WHERE status IN ('created', 'review', 'assigned', 'client_confirmed', 'trader_paid');
-- The manual fraud review queue.
CREATE INDEX orders_review_queue_idx ON orders (created_at) WHERE status = 'review';
-- Lists and statistics per role: store, trader, requisite, and platform-wide by time.
CREATE INDEX orders_store_created_idx ON orders (store_id, created_at DESC);
CREATE INDEX orders_trader_created_idx ON orders (trader_id, created_at DESC) WHERE trader_id IS NOT NULL;
CREATE INDEX orders_requisite_created_idx ON orders (requisite_id, created_at DESC) WHERE requisite_id IS NOT NULL;
CREATE INDEX orders_created_idx ON orders (created_at DESC);
CREATE INDEX orders_status_created_idx ON orders (status, created_at DESC);
CREATE INDEX orders_store_customer_idx ON orders (store_id, customer_id) WHERE customer_id IS NOT NULL;

-- Every applied order event, for the order timeline in support and merchant views. The event id
-- is the deterministic id carried by the Kafka record, so a replay inserts nothing
-- (ON CONFLICT DO NOTHING).
CREATE TABLE order_events (
    event_id     uuid PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES orders (id),
    version      bigint NOT NULL CHECK (version >= 1),
    event_type   text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_.]*$'),
    status       text NOT NULL CHECK (status ~ '^[a-z][a-z_]*$'),   -- order status after the event
    actor_kind   text CHECK (actor_kind IN ('store', 'customer', 'trader', 'staff', 'system')),
    actor_user_id uuid REFERENCES users (id),
    occurred_at  timestamptz NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_events_order_version_key UNIQUE (order_id, version)
);

-- Hosted payment page sessions. An order may get a new session (e.g. re-issued link); at most one
-- is active at a time.
CREATE TABLE payment_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token         text NOT NULL CHECK (char_length(token) BETWEEN 16 AND 128),
    order_id      uuid NOT NULL REFERENCES orders (id),
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'completed', 'expired', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_seen_at  timestamptz,
    customer_ip   inet,
    user_agent    text,
    CONSTRAINT payment_sessions_token_key UNIQUE (token),
    CONSTRAINT payment_sessions_expiry_check CHECK (expires_at > created_at)
);
CREATE UNIQUE INDEX payment_sessions_one_active_per_order ON payment_sessions (order_id)
    WHERE status = 'active';
CREATE INDEX payment_sessions_order_idx ON payment_sessions (order_id);

-- Payment receipts (customer's proof of a pay-in, trader's proof of a pay-out). The file lives in
-- object storage (S3 or the local filesystem); this row is its index entry. sha256 lets a repeated
-- upload of the same file be recognised and detects tampering.
CREATE TABLE receipts (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id             uuid NOT NULL REFERENCES orders (id),
    uploaded_by_kind     text NOT NULL CHECK (uploaded_by_kind IN ('customer', 'trader', 'staff')),
    uploaded_by_user_id  uuid REFERENCES users (id),
    object_key           text NOT NULL CHECK (object_key <> ''),
    content_type         text NOT NULL CHECK (content_type ~ '^[a-z]+/[a-zA-Z0-9.+-]+$'),
    size_bytes           bigint NOT NULL CHECK (size_bytes > 0),
    sha256               bytea NOT NULL CHECK (octet_length(sha256) = 32),
    uploaded_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT receipts_object_key_key UNIQUE (object_key),
    CONSTRAINT receipts_order_sha256_key UNIQUE (order_id, sha256)
);

-- Disputes: an order whose outcome is contested (customer paid but trader did not confirm, wrong
-- amount, pay-out not received). Resolution is decided by staff and becomes an order event.
CREATE TABLE disputes (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id           uuid NOT NULL REFERENCES orders (id),
    opened_by_kind     text NOT NULL CHECK (opened_by_kind IN ('customer', 'store', 'trader', 'staff', 'system')),
    opened_by_user_id  uuid REFERENCES users (id),
    reason             text NOT NULL CHECK (btrim(reason) <> ''),
    status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'withdrawn')),
    -- What the resolution did to the order.
    outcome            text CHECK (outcome IN ('completed', 'completed_with_amount', 'cancelled')),
    -- For 'completed_with_amount': the fiat amount actually paid.
    resolved_fiat_amount numeric(20,2) CHECK (resolved_fiat_amount > 0),
    resolution_comment text,
    resolved_by        uuid REFERENCES users (id),
    resolved_at        timestamptz,
    sla_deadline       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT disputes_resolution_check CHECK (
        (status = 'resolved') = (outcome IS NOT NULL AND resolved_at IS NOT NULL)),
    CONSTRAINT disputes_amount_check CHECK (
        (outcome IS NOT DISTINCT FROM 'completed_with_amount') = (resolved_fiat_amount IS NOT NULL))
);
CREATE UNIQUE INDEX disputes_one_open_per_order ON disputes (order_id) WHERE status = 'open';
CREATE INDEX disputes_order_idx ON disputes (order_id);
CREATE INDEX disputes_open_sla_idx ON disputes (sla_deadline) WHERE status = 'open';
CREATE TRIGGER disputes_set_updated_at BEFORE UPDATE ON disputes
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
