-- Alerts (issue 15): notification channels, rules, their instances' states, the transition
-- history, the notification outbox and silences. Rule definitions, channel configurations and
-- silence matchers are JSON owned by strata-alerts; the catalog enforces names, references,
-- limits and atomicity.

CREATE TABLE alert_channels (
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id),
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    -- JSON; holds the webhook secret, so it is never listed as is.
    config        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE alert_rules (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id),
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    definition    TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

-- A channel cannot be deleted while a rule names it (the foreign key refuses it).
CREATE TABLE alert_rule_channels (
    rule_id   INTEGER NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    tenant_id INTEGER NOT NULL,
    channel   TEXT    NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (rule_id, channel),
    FOREIGN KEY (tenant_id, channel) REFERENCES alert_channels(tenant_id, name)
);

-- labels: canonical JSON object (keys sorted). notified_ms: the last firing notification sent
-- (NULL: this firing was not notified yet). suppressed: the due notification was silenced.
CREATE TABLE alert_instances (
    rule_id         INTEGER NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    labels          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    value           REAL,
    state_since_ms  INTEGER NOT NULL,
    active_since_ms INTEGER,
    last_active_ms  INTEGER,
    notified_ms     INTEGER,
    suppressed      INTEGER NOT NULL DEFAULT 0,
    acknowledged    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, labels)
);

CREATE TABLE alert_history (
    id         INTEGER PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
    rule_name  TEXT    NOT NULL,
    labels     TEXT    NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    value      REAL,
    time_ms    INTEGER NOT NULL
);
CREATE INDEX alert_history_by_tenant ON alert_history (tenant_id, time_ms);

-- The outbox: one row per (notification, channel), written in the transaction of the state
-- change that calls for it. group_until_ms: until then more instances may join the row
-- (group_wait) and it is not sent. status: pending | delivered | failed | silenced.
CREATE TABLE alert_notifications (
    id              TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
    rule_name       TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    alerts          TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    group_until_ms  INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    delivered_ms    INTEGER,
    PRIMARY KEY (id, channel)
);
CREATE INDEX alert_notifications_due ON alert_notifications (status, next_attempt_ms);
CREATE INDEX alert_notifications_by_tenant ON alert_notifications (tenant_id, created_ms);

CREATE TABLE alert_silences (
    id         TEXT    PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
    matchers   TEXT    NOT NULL,
    starts_ms  INTEGER NOT NULL,
    until_ms   INTEGER NOT NULL,
    comment    TEXT    NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL
);
CREATE INDEX alert_silences_by_tenant ON alert_silences (tenant_id);
