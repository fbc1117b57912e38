-- Runtime settings, changed by staff without a redeploy and published to the compacted
-- `settings` topic through the outbox (processors read them as a table).

CREATE TABLE configuration_settings (
    key          text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),  -- 'orders.pay_in.ttl_seconds'
    value        jsonb NOT NULL,
    -- How to read `value`. Decimals are JSON strings ("0.015"), never JSON numbers, so that no
    -- reader parses money or rates through a float.
    value_type   text NOT NULL
                 CHECK (value_type IN ('string', 'integer', 'decimal', 'boolean', 'duration_seconds', 'json')),
    description  text NOT NULL DEFAULT '',
    -- Optimistic concurrency for the admin UI: UPDATE ... WHERE key = $1 AND version = $2.
    version      bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   uuid REFERENCES users (id),
    CONSTRAINT configuration_settings_value_matches_type CHECK (
        CASE value_type
            WHEN 'string'           THEN jsonb_typeof(value) = 'string'
            WHEN 'boolean'          THEN jsonb_typeof(value) = 'boolean'
            WHEN 'integer'          THEN jsonb_typeof(value) = 'number'
                                         AND value::text ~ '^-?[0-9]+$'
            WHEN 'duration_seconds' THEN jsonb_typeof(value) = 'number'
                                         AND value::text ~ '^[0-9]+$'
            WHEN 'decimal'          THEN jsonb_typeof(value) = 'string'
                                         AND (value #>> '{}') ~ '^-?[0-9]+(\.[0-9]+)?$'
            ELSE true                                                   -- 'json': any document
        END)
);
CREATE TRIGGER configuration_settings_set_updated_at BEFORE UPDATE ON configuration_settings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
