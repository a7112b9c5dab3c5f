-- The cold tier: which Parquet files hold each metric's compacted data, and up to where.
--
-- A metric's watermark says: every row with timestamp < watermark_ms and hot-tier sequence
-- number <= compacted_seq is in exactly one live file below. Files and watermark change together
-- in one transaction, so a reader sees the old state or the new one, never a mix.

CREATE TABLE cold_watermarks (
    metric_id INTEGER PRIMARY KEY REFERENCES metrics(id),
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    watermark_ms INTEGER NOT NULL,
    compacted_seq INTEGER NOT NULL CHECK (compacted_seq >= 0),
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE cold_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    -- UTC midnight of the day the file's rows fall in.
    day_ms INTEGER NOT NULL,
    -- Object-store path, relative to the cold root.
    path TEXT NOT NULL UNIQUE,
    row_count INTEGER NOT NULL CHECK (row_count >= 0),
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    min_ts_ms INTEGER NOT NULL,
    max_ts_ms INTEGER NOT NULL,
    -- JSON array of {"name": incoming name, "type": arrow type name} for the value columns.
    columns TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    -- Set when the file leaves the manifest (replaced, expired, metric purged). Its object is
    -- deleted after a grace period, so queries planned before still find it.
    retired_at_ms INTEGER,
    CHECK (min_ts_ms <= max_ts_ms)
);
CREATE INDEX cold_files_live ON cold_files (metric_id, day_ms) WHERE retired_at_ms IS NULL;
CREATE INDEX cold_files_retired ON cold_files (retired_at_ms) WHERE retired_at_ms IS NOT NULL;

CREATE TABLE compactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    started_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    files_written INTEGER NOT NULL DEFAULT 0,
    row_count INTEGER NOT NULL DEFAULT 0,
    watermark_ms INTEGER,
    message TEXT
);
CREATE INDEX compactions_by_tenant ON compactions (tenant_id, id);
