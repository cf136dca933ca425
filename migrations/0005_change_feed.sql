-- The change feed: every committed change to a camera or an owner gets a sequence number, in
-- commit order, and is announced with NOTIFY on the channel `camreg_changes`, so that several
-- camregd on one database keep their in-memory indexes current (see docs/operations.md).
--
-- Commit order: a bigserial value is taken when a row is inserted, not when its transaction
-- commits, so seq 11 could become visible before seq 10, and a daemon that had applied 11 and
-- asks for "seq > 11" would miss 10 forever. Here the number is taken under a transaction-level
-- advisory lock that is held until commit: the next writer gets its number only after the
-- previous one has committed (or rolled back, leaving a hole nobody will fill later). So
-- "everything with seq <= N is visible" as soon as N is, and catching up from the last applied
-- number misses nothing. The lock is taken when the change row is written, the last statement
-- of every camera write, so writers are serialised only for the commit itself.

CREATE FUNCTION camreg_next_change_seq() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(99097114101104);
    RETURN nextval('camera_changes_seq_seq');
END $$;

-- The number is assigned by the trigger, never by a default (which would take a number
-- outside the lock, and two per row).
ALTER TABLE camera_changes ALTER COLUMN seq DROP DEFAULT;

CREATE FUNCTION camera_changes_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.seq := camreg_next_change_seq();
    RETURN NEW;
END $$;

CREATE TRIGGER camera_changes_number BEFORE INSERT ON camera_changes
    FOR EACH ROW EXECUTE FUNCTION camera_changes_number();

-- One notification per statement (an import of thousands of rows is one), carrying the highest
-- sequence number it wrote; listeners read the changes themselves from camera_changes.
CREATE FUNCTION camera_changes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    top bigint;
BEGIN
    SELECT max(seq) INTO top FROM new_rows;
    IF top IS NOT NULL THEN
        PERFORM pg_notify('camreg_changes', top::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER camera_changes_notify AFTER INSERT ON camera_changes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION camera_changes_notify();

-- Owners (their consent is cached by every daemon): each insert or update takes a number from
-- the same sequence, under the same lock, so one "last applied" number covers both.
ALTER TABLE owners ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX owners_change_seq_idx ON owners (change_seq);

CREATE FUNCTION owners_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := camreg_next_change_seq();
    RETURN NEW;
END $$;

CREATE TRIGGER owners_number BEFORE INSERT OR UPDATE ON owners
    FOR EACH ROW EXECUTE FUNCTION owners_number();

CREATE FUNCTION owners_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('camreg_changes', NEW.change_seq::text);
    RETURN NULL;
END $$;

CREATE TRIGGER owners_notify AFTER INSERT OR UPDATE ON owners
    FOR EACH ROW EXECUTE FUNCTION owners_notify();

-- Incidents (each daemon keeps an incident index): numbered from the same sequence, but only at
-- commit, by a deferred trigger. Recording an incident also writes its candidate cameras, whose
-- foreign keys lock camera rows; taking the change lock any earlier could deadlock with a camera
-- write that holds such a row and waits for the lock. Incidents are never updated.
ALTER TABLE incidents ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX incidents_change_seq_idx ON incidents (change_seq);

CREATE FUNCTION incidents_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint := camreg_next_change_seq();
BEGIN
    UPDATE incidents SET change_seq = n WHERE id = NEW.id;
    PERFORM pg_notify('camreg_changes', n::text);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER incidents_number AFTER INSERT ON incidents
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION incidents_number();
