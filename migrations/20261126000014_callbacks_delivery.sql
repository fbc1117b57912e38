-- Merchant callbacks, as the callback sink delivers them (issue 5).
--
-- Only the first event of an order carries its callback URL (the order's own, or else the
-- store's default at that moment, chosen by fraud); later events do not. The sink remembers it
-- per order here, written in the same transaction as the consumed offsets, so every later
-- event of the order goes to the same URL.
CREATE TABLE callback_order_targets (
    order_id    uuid PRIMARY KEY,
    store_id    uuid NOT NULL REFERENCES stores (id),
    url         text NOT NULL CHECK (url ~ '^https?://'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE callback_deliveries
    -- The order's status after the event and before it, for the delivery log's filters.
    ADD COLUMN order_status     text,
    ADD COLUMN previous_status  text,
    -- The retry schedule restarts at a replay: attempts made before it do not count.
    ADD COLUMN schedule_offset  integer NOT NULL DEFAULT 0 CHECK (schedule_offset >= 0),
    ADD COLUMN replay_count     integer NOT NULL DEFAULT 0 CHECK (replay_count >= 0),
    ADD COLUMN replayed_at      timestamptz,
    ADD COLUMN replayed_by      uuid REFERENCES users (id);

-- The delivery log filters by status and time within a store.
CREATE INDEX callback_deliveries_store_status_created_idx
    ON callback_deliveries (store_id, status, created_at);

ALTER TABLE callback_attempts
    -- The `webhook-timestamp` sent with the attempt (fresh for every attempt).
    ADD COLUMN webhook_timestamp bigint,
    -- When the sender planned the next attempt after this one (null after the last or a 2xx).
    ADD COLUMN next_attempt_at   timestamptz;

-- Since when every attempt to the store's endpoint has failed (null after any 2xx); the sender
-- disables the store's callbacks once this is older than `callbacks.disable_after_failing_secs`.
ALTER TABLE stores ADD COLUMN callbacks_failing_since timestamptz;
