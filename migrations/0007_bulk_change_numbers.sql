-- Bulk change rows take their numbers in the statement itself.
--
-- Migration 0005 numbers every camera_changes row in a BEFORE INSERT trigger that calls
-- camreg_next_change_seq() (advisory lock + nextval) in PL/pgSQL: one function call per row,
-- which for an import of a million cameras is a million calls. An import now takes the same
-- transaction-level advisory lock once (pg_advisory_xact_lock(99097114101104), held until
-- commit) and gives its rows nextval('camera_changes_seq_seq') in the INSERT; the trigger runs
-- only for rows that come without a number, so every other writer is numbered exactly as
-- before. A writer that supplies seq must hold that lock first (CameraImport does), which keeps
-- "everything with seq <= N is visible as soon as N is".

DROP TRIGGER camera_changes_number ON camera_changes;

CREATE TRIGGER camera_changes_number BEFORE INSERT ON camera_changes
    FOR EACH ROW WHEN (NEW.seq IS NULL) EXECUTE FUNCTION camera_changes_number();
