-- Two syncs at once (dashgen.sync.write): the write is serialised by an advisory lock, and a sync whose AWS read
-- started before the read of the last sync that committed writes nothing (an older view of AWS never
-- overwrites a newer one). One row: when the last committed sync started reading AWS, and when it committed.
CREATE TABLE dashgen.sync_state (
    singleton    bool PRIMARY KEY DEFAULT true CHECK (singleton),
    read_at      timestamptz NOT NULL,  -- the start of the AWS read of the last sync that wrote
    committed_at timestamptz NOT NULL
);
