-- Owners, the camera life cycle and the change log.

CREATE TABLE owners (
    id                  bigserial PRIMARY KEY,
    kind                text NOT NULL CHECK (kind IN ('household', 'business', 'boarding_house', 'company', 'public')),
    name                text NOT NULL CHECK (btrim(name) <> ''),
    phone               text NOT NULL CHECK (phone ~ '^\+84[0-9]{9,10}$'),
    email               text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    address             text NOT NULL CHECK (btrim(address) <> ''),
    ward                text NOT NULL CHECK (btrim(ward) <> ''),
    consent_granted     boolean NOT NULL DEFAULT false,
    consent_valid_until date,
    consent_note        text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    version             integer NOT NULL DEFAULT 1 CHECK (version >= 1)
);
CREATE INDEX owners_phone_idx ON owners (phone);

ALTER TABLE cameras
    ADD COLUMN owner_id      bigint REFERENCES owners (id),
    ADD COLUMN verified_by   text,
    ADD COLUMN verified_at   timestamptz,
    ADD COLUMN status_reason text;
CREATE INDEX cameras_owner_idx ON cameras (owner_id);

-- Numbers for new camera ids (BC-00001 …); moved past the highest id after bulk loads.
CREATE SEQUENCE camera_number_seq;

-- Every change to a camera, in commit order of its sequence number. Written in the same
-- transaction as the change itself, so the log and the table never disagree.
CREATE TABLE camera_changes (
    seq        bigserial PRIMARY KEY,
    camera_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('register', 'verify', 'update', 'status', 'retire', 'import', 'demo')),
    actor      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    version    integer NOT NULL,
    detail     text
);
CREATE INDEX camera_changes_camera_idx ON camera_changes (camera_id, seq);
