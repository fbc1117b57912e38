-- The trader holding each order, as the callbacks intake first read it (issue 14, one holder per
-- order): should a second trader's book assign an order too, commissions has it cancel its copy,
-- and that trader's events are not the merchant's to hear about.
CREATE TABLE callback_order_holders (
    order_id    uuid PRIMARY KEY,
    trader_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
