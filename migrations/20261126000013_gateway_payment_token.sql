-- The payment page finds its order by token from the first moment, before the order projection
-- has caught up.
ALTER TABLE gateway_requests ADD COLUMN payment_token text UNIQUE
    CHECK (char_length(payment_token) BETWEEN 16 AND 128);
