-- Query usage (issue 17): per tenant, the fields queries read and filter on and the names they
-- used that did not exist, as a JSON document (bounded by the query engine's caps) that the
-- statistics flusher replaces, so "how you have been querying it" survives a restart.
CREATE TABLE query_usage (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    usage TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
