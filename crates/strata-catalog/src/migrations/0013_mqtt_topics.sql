-- Issue 19: a tenant's MQTT topic templates (`plant/{site}/{metric}/{device}`), a JSON array of
-- strings tried in order; empty means the built-in `{metric}` and `{metric}/{device}`.
ALTER TABLE tenants ADD COLUMN mqtt_topics TEXT NOT NULL DEFAULT '[]';
