-- Rollups (issue 16): continuous aggregates kept as one Arrow IPC blob of final rows per bucket.
-- A rollup has at most two versions: `served` (complete; what queries read) and `pending`
-- (being backfilled after creation, an SQL change or a change of its source's schema).
-- retired_version: the served version a completed one replaced; its buckets stay until the
-- next completion, so a query planned on it still reads it.
-- *_fingerprint: the source metric's definition the version was built under; a change
-- rebuilds the rollup.
-- applied_seq: every hot row with a write sequence at or below it is reflected in the
-- maintained version (pending if any, else served); recovery re-reads only rows above it.
CREATE TABLE rollups (
    id                  INTEGER PRIMARY KEY,
    tenant_id           INTEGER NOT NULL REFERENCES tenants(id),
    name                TEXT    NOT NULL,
    served_version      INTEGER,
    served_sql          TEXT,
    served_schema       BLOB,
    served_fingerprint  TEXT,
    pending_version     INTEGER,
    pending_sql         TEXT,
    pending_schema      BLOB,
    pending_fingerprint TEXT,
    retired_version     INTEGER,
    backfill_seq        INTEGER,
    backfill_from_ms    INTEGER,
    backfill_to_ms      INTEGER,
    backfill_cursor_ms  INTEGER,
    applied_seq         INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    created_at_ms       INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE rollup_buckets (
    rollup_id INTEGER NOT NULL REFERENCES rollups(id) ON DELETE CASCADE,
    version   INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    rows      BLOB    NOT NULL,
    PRIMARY KEY (rollup_id, version, bucket_ms)
) WITHOUT ROWID;
