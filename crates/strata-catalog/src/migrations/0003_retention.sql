-- Retention: an optional per-tenant cold retention, and the purge of soft-deleted metrics.
--
-- cold_retention_days: cold day partitions that ended more than this many days ago are retired
-- (then deleted after the grace period). NULL keeps cold data forever.
ALTER TABLE tenants ADD COLUMN cold_retention_days INTEGER CHECK (cold_retention_days > 0);

-- purged_at_ms: set once a deleted metric's hot rows and cold files are gone. A metric is purged
-- only after it was deleted (deleted_at_ms set) and only once.
ALTER TABLE metrics ADD COLUMN purged_at_ms INTEGER
    CHECK (purged_at_ms IS NULL OR deleted_at_ms IS NOT NULL);
