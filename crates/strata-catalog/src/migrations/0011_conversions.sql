-- Issue 17: a name of a field may carry a conversion, a SQL expression over that name's values
-- (`(tempF - 32) * 5 / 9`) applied on read before the field's names are coalesced, so a device
-- sending Fahrenheit under `tempF` feeds the Celsius field correctly. No data is rewritten.
ALTER TABLE metric_local_names ADD COLUMN conversion TEXT;
