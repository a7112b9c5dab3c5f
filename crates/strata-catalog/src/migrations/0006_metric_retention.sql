-- Downsampling retention (issue 16): a metric's own retention, next to the tenant's cold
-- retention. The effective floor of a metric is the nearer of the two, so raw data can be kept
-- shorter than the rollups built from it. NULL follows the tenant's setting alone.
ALTER TABLE metrics ADD COLUMN retention_days INTEGER CHECK (retention_days > 0);
