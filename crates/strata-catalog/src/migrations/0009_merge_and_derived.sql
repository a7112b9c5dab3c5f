-- Issue 17: a metric merged into another keeps its own rows, files and incoming names (no data
-- rewrite); `merged_into` names the metric whose table now reads them. Its names moved to that
-- metric, so it is no longer a table of its own.
ALTER TABLE metrics ADD COLUMN merged_into INTEGER REFERENCES metrics(id);
-- Issue 17: a derived field is computed on read from this SQL expression over other fields.
ALTER TABLE fields ADD COLUMN expression TEXT;
