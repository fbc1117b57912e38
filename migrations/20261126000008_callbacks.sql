-- Merchant callbacks: one delivery per order event to notify, and every HTTP attempt made for it.
--
-- Written by the callback sink. A delivery is keyed by the order event's deterministic id, so a
-- replayed event inserts nothing (ON CONFLICT (event_id) DO NOTHING) and a merchant is not
-- notified twice because of a replay.

CREATE TABLE callback_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id         uuid NOT NULL,
    -- Not a foreign key to orders: the callback sink and the order projection sink consume
    -- orders.events independently; neither waits for the other.
    order_id         uuid NOT NULL,
    store_id         uuid NOT NULL REFERENCES stores (id),
    event_type       text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_.]*$'),
    -- The order's version after the event: lets the sender keep an order's callbacks in order.
    order_version    bigint NOT NULL CHECK (order_version >= 1),
    url              text NOT NULL CHECK (url ~ '^https?://'),
    -- The body to POST (signed at send time with the store's current secret).
    payload          jsonb NOT NULL,
    -- pending:    waiting for next_attempt_at;
    -- delivering: claimed by a sender; next_attempt_at is then the lease expiry, after which the
    --             delivery is due again (a crashed sender does not lose it);
    -- succeeded:  a 2xx was received;
    -- failed:     attempts exhausted or the endpoint was disabled for good.
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed')),
    attempt_count    integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer CHECK (last_status_code BETWEEN 100 AND 599),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT callback_deliveries_event_id_key UNIQUE (event_id),
    CONSTRAINT callback_deliveries_due_check
        CHECK (status NOT IN ('pending', 'delivering') OR next_attempt_at IS NOT NULL),
    CONSTRAINT callback_deliveries_completed_check
        CHECK ((status IN ('succeeded', 'failed')) = (completed_at IS NOT NULL))
);
-- The scheduler's query: WHERE status IN ('pending','delivering') AND next_attempt_at <= now()
-- ORDER BY next_attempt_at. Partial, so finished deliveries do not bloat it.
CREATE INDEX callback_deliveries_due_idx ON callback_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX callback_deliveries_order_idx ON callback_deliveries (order_id, order_version);
CREATE INDEX callback_deliveries_store_created_idx ON callback_deliveries (store_id, created_at DESC);
-- "Is this store's endpoint failing?" (pending deliveries per store).
CREATE INDEX callback_deliveries_store_open_idx ON callback_deliveries (store_id)
    WHERE status IN ('pending', 'delivering');
CREATE TRIGGER callback_deliveries_set_updated_at BEFORE UPDATE ON callback_deliveries
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE callback_attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES callback_deliveries (id),
    attempt_no       integer NOT NULL CHECK (attempt_no >= 1),
    url              text NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    -- Null when no HTTP response arrived (connect error, timeout): see error.
    status_code      integer CHECK (status_code BETWEEN 100 AND 599),
    latency_ms       integer CHECK (latency_ms >= 0),
    -- At most 1 KB of the response body, for support; never the whole body.
    response_excerpt text CHECK (octet_length(response_excerpt) <= 1024),
    error            text,
    CONSTRAINT callback_attempts_delivery_attempt_key UNIQUE (delivery_id, attempt_no),
    CONSTRAINT callback_attempts_finished_check CHECK (finished_at IS NULL OR finished_at >= started_at)
);
CREATE INDEX callback_attempts_started_idx ON callback_attempts (started_at);
