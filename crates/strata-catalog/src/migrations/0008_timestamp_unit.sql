-- Issue 17, late schema: the unit a metric reads numeric timestamps in (JSON numbers and digit
-- strings). 'ms' is the v1 contract and every existing metric's unit; 'auto' chooses by
-- magnitude at ingest. Numbered 0008: 0007 is reserved for other work, and the migration runner
-- applies every version not yet recorded, so the two can land in either order.
ALTER TABLE metrics ADD COLUMN timestamp_unit TEXT NOT NULL DEFAULT 'ms'
    CHECK (timestamp_unit IN ('ms', 's', 'us', 'ns', 'auto'));
