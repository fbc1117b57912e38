-- The outbox carries records already encoded for their topic: the relay publishes them byte for
-- byte, so what the broker gets is exactly what the writing transaction committed.
--   value: the framed Avro value (Confluent wire format); NULL with is_tombstone publishes a
--          deletion for compacted topics.
ALTER TABLE outbox ADD COLUMN value bytea;
ALTER TABLE outbox ADD COLUMN is_tombstone boolean NOT NULL DEFAULT false;
ALTER TABLE outbox ADD CONSTRAINT outbox_value_or_tombstone
    CHECK (is_tombstone = (value IS NULL AND payload IS NULL));
