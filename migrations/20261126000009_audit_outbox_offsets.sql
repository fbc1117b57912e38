-- Audit log, transactional outbox, and sink offsets.

-- Who did what to which entity, with before/after images. Written by the management API (in the
-- same transaction as the change) and by the audit sink (from Kafka, with the record's
-- deterministic id, so replays insert nothing). Rows are never updated; old low-level rows may be
-- deleted by a retention job.
CREATE TABLE audit_log (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Null for actions of the system itself or of a store through the gateway API.
    actor_user_id  uuid REFERENCES users (id),
    actor_role     text NOT NULL CHECK (actor_role IN
                       ('admin', 'support', 'team_lead', 'trader', 'merchant', 'store', 'customer', 'system')),
    action         text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.:-]*$'),    -- 'requisite.approve'
    entity_type    text NOT NULL CHECK (entity_type ~ '^[a-z][a-z0-9_]*$'),  -- 'requisite'
    -- Text, not uuid: some entities are keyed by codes (settings keys, currency codes).
    entity_id      text,
    before         jsonb,
    after          jsonb,
    level          text NOT NULL DEFAULT 'info'
                   CHECK (level IN ('debug', 'info', 'warning', 'critical')),
    ip             inet,
    user_agent     text,
    request_id     text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_level_created_idx ON audit_log (level, created_at DESC);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, created_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, created_at DESC)
    WHERE actor_user_id IS NOT NULL;

CREATE FUNCTION audit_log_forbid_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log rows cannot be changed'
        USING ERRCODE = 'restrict_violation', TABLE = 'audit_log';
END
$$;
CREATE TRIGGER audit_log_immutable BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_forbid_update();

-- Transactional outbox: the management API writes master-data changes and the matching outbox
-- row in one transaction; a relay publishes unpublished rows to Kafka (compacted topics
-- `traders`, `stores`, `rates`, `settings`, ...) in id order and stamps published_at.
-- The relay must scan "published_at IS NULL ORDER BY id", not "id > last published": ids are
-- allocated before commit, so a smaller id can become visible after a larger one.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    topic         text NOT NULL CHECK (topic ~ '^[a-zA-Z0-9._-]{1,249}$'),
    -- The Kafka record key (entity id / code); compaction keeps the last record per key.
    key           text NOT NULL,
    -- The record as JSON, encoded to Avro by the relay. NULL is a tombstone (entity deleted).
    payload       jsonb,
    headers       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error    text
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Consumed offsets of every sink, written in the same transaction as the rows the sink derives
-- from those records: after a crash the sink resumes exactly after what it has stored, and Kafka's
-- own committed offsets are only a hint.
CREATE TABLE sink_offsets (
    consumer_group  text NOT NULL CHECK (consumer_group <> ''),   -- the sink's name / group id
    topic           text NOT NULL CHECK (topic <> ''),
    partition       integer NOT NULL CHECK (partition >= 0),
    -- The offset of the next record to read (last applied + 1), as Kafka commits it.
    next_offset     bigint NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
