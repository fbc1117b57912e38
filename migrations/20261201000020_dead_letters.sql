-- Dead letters: records a loop gave up on (undecodable, refused by a constraint), kept by the
-- dead-letters sink from the `deadletters` topic so that an operator can list them and re-drive
-- them after a fix. One row per record and component: a letter sent again after a crash
-- (the sink replays) inserts nothing; a re-driven record that fails again is a new record (a new
-- offset), and so a new row.
CREATE TABLE dead_letters (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    component         text NOT NULL,
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    reason            text NOT NULL,
    record_key        bytea,
    payload           bytea,
    failed_at         timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    -- The last re-drive (the record produced again to its source topic).
    replayed_at       timestamptz,
    replayed_by       uuid REFERENCES users (id),
    replay_count      integer NOT NULL DEFAULT 0 CHECK (replay_count >= 0),
    CONSTRAINT dead_letters_source_key
        UNIQUE (component, source_topic, source_partition, source_offset)
);
-- The list, newest first, optionally by component or topic.
CREATE INDEX dead_letters_failed_idx ON dead_letters (failed_at DESC, id DESC);
