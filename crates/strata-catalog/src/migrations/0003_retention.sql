-- Retention: an optional per-tenant cold retention, and the purge of soft-deleted metrics;
-- series-key generations for pruning cold files by series.
--
-- cold_retention_days: cold day partitions that ended more than this many days ago are retired
-- (then deleted after the grace period). NULL keeps cold data forever.
ALTER TABLE tenants ADD COLUMN cold_retention_days INTEGER CHECK (cold_retention_days > 0);

-- purged_at_ms: set once a deleted metric's hot rows and cold files are gone. A metric is purged
-- only after it was deleted (deleted_at_ms set) and only once.
ALTER TABLE metrics ADD COLUMN purged_at_ms INTEGER
    CHECK (purged_at_ms IS NULL OR deleted_at_ms IS NOT NULL);

-- series_generation: bumped whenever a metric's series keys, or the names of a key field, change.
-- A cold file records the generation its _strata_series hashes were computed under; a query may
-- prune a file by series hash only when that equals the metric's current generation. Files from
-- before this migration are unknown (-1) and never pruned by series.
ALTER TABLE metrics ADD COLUMN series_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cold_files ADD COLUMN series_generation INTEGER NOT NULL DEFAULT -1;
