-- Timestamps are epoch milliseconds (UTC). Lists are JSON text.

CREATE TABLE tenants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    metric_keys TEXT NOT NULL,
    timestamp_patterns TEXT NOT NULL
);

-- Only the SHA-256 of a secret is stored; the secret itself is shown once at creation.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    role TEXT NOT NULL CHECK (role IN ('admin', 'write', 'read')),
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    last_used_at_ms INTEGER,
    revoked_at_ms INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

-- A deleted metric is a tombstone (deleted_at_ms set); its rows stay so its data keeps an owner.
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    timestamp_patterns TEXT NOT NULL DEFAULT '[]',
    series_keys TEXT NOT NULL DEFAULT '[]',
    -- 1 while every stored row's series hash was computed from the current series keys and
    -- their names; a change after data exists sets 0, and seeks by series are then unsafe.
    series_hashes_exact INTEGER NOT NULL DEFAULT 1,
    created_at_ms INTEGER NOT NULL,
    deleted_at_ms INTEGER
);
CREATE INDEX metrics_tenant ON metrics(tenant_id);

-- Every name of a metric: its display name and its aliases, in the order they joined (seq).
-- live mirrors the metric's tombstone so the partial index frees the names of deleted metrics.
CREATE TABLE metric_names (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    live INTEGER NOT NULL DEFAULT 1,
    UNIQUE (metric_id, name)
);
CREATE UNIQUE INDEX metric_names_live_unique ON metric_names(tenant_id, name) WHERE live = 1;

CREATE TABLE fields (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    name TEXT NOT NULL,
    field_type TEXT,
    hidden INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX fields_metric ON fields(metric_id);

-- Names inside one metric: the names of its fields (field_id set) and its timestamp aliases
-- (field_id NULL). One UNIQUE index covers both, so no name can mean two things. seq is the
-- precedence order of a field's names.
CREATE TABLE metric_local_names (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    field_id INTEGER REFERENCES fields(id),
    name TEXT NOT NULL,
    UNIQUE (metric_id, name)
);

-- Keys devices actually sent, per metric. Hot-tier data is stored under name_id.
CREATE TABLE incoming_names (
    metric_id INTEGER NOT NULL REFERENCES metrics(id),
    name_id INTEGER NOT NULL CHECK (name_id >= 1),
    name TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    first_seen_ms INTEGER,
    last_seen_ms INTEGER,
    kinds INTEGER NOT NULL DEFAULT 0,
    samples TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (metric_id, name_id),
    UNIQUE (metric_id, name)
);

-- Append-only; versions are dense from 1 per tenant.
CREATE TABLE schema_history (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    version INTEGER NOT NULL CHECK (version >= 1),
    at_ms INTEGER NOT NULL,
    change TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
