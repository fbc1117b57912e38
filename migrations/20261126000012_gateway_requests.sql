-- The gateway's idempotency record: the first request for each (store, external order id),
-- written before the order goes to Kafka. A repeat with the same content gets the same order
-- back (and is produced again, harmlessly: the order id is the same); a repeat with another
-- amount, currency or method is refused. Kafka stays the log of record for the order itself.
CREATE TABLE gateway_requests (
    store_id           uuid NOT NULL REFERENCES stores (id),
    external_order_id  text NOT NULL CHECK (char_length(external_order_id) BETWEEN 1 AND 128),
    order_id           uuid NOT NULL UNIQUE,
    direction          text NOT NULL CHECK (direction IN ('pay_in', 'pay_out')),
    -- SHA-256 of the fields that define the order; equal hashes mean "the same request".
    request_hash       bytea NOT NULL CHECK (octet_length(request_hash) = 32),
    fiat_amount        numeric(20,2) CHECK (fiat_amount > 0),
    fiat_currency      text NOT NULL,
    payment_method     text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    PRIMARY KEY (store_id, external_order_id)
);
