-- Issue 17: hiding a field is a soft delete whose data the compactor garbage-collects once the
-- field has been hidden for the purge delay (`--purge-hidden-after-secs`). `hidden_at_ms` is
-- when it was last hidden; triggers keep it true for every write of `hidden`, so no code path
-- can forget it. Fields hidden before this migration count as hidden from now.
ALTER TABLE fields ADD COLUMN hidden_at_ms INTEGER;
UPDATE fields SET hidden_at_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    WHERE hidden = 1;
CREATE TRIGGER fields_hidden_at_insert AFTER INSERT ON fields WHEN NEW.hidden = 1
BEGIN
    UPDATE fields SET hidden_at_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
        WHERE id = NEW.id;
END;
CREATE TRIGGER fields_hidden_at_update AFTER UPDATE OF hidden ON fields
    WHEN NEW.hidden IS NOT OLD.hidden
BEGIN
    UPDATE fields SET hidden_at_ms = CASE WHEN NEW.hidden = 1
        THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END
        WHERE id = NEW.id;
END;
