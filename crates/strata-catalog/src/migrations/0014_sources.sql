-- Sources (issue 19): external queues and brokers Strata consumes for a tenant (a NATS
-- JetStream stream, topics on an MQTT broker). Only the configuration is durable; status,
-- counts, last error and lag are the running consumer's, kept in memory by strata-sources.
-- config: the JSON object the admin sent (kind-specific; strata-sources owns its shape and
-- checks it before it gets here). It can hold a broker password: never shown as is.
CREATE TABLE sources (
    id            TEXT    PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id),
    kind          TEXT    NOT NULL,
    config        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX sources_by_tenant ON sources (tenant_id);
