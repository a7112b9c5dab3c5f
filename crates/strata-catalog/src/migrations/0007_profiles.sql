-- Schema intelligence (issue 17): what ingest profiled of each metric (a JSON document the write
-- path merges on every statistics flush; bounded by the profile's own caps), and the
-- suggestions an admin dismissed for good, by their stable id.
CREATE TABLE metric_profiles (
    metric_id INTEGER PRIMARY KEY REFERENCES metrics(id),
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    profile TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX metric_profiles_tenant ON metric_profiles(tenant_id);

CREATE TABLE dismissed_suggestions (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    suggestion_id TEXT NOT NULL,
    dismissed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, suggestion_id)
);
