-- The camera registry. Every rule of Camera.validate() (Sources/Registry/Camera.swift) is
-- also a constraint here, so that no client of the database can store a bad camera.
CREATE TABLE cameras (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Z0-9_-]{1,64}$'),
    lat             double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon             double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    site_kind       text NOT NULL CHECK (site_kind IN ('intersection', 'alley', 'street', 'building', 'other')),
    address         text NOT NULL CHECK (btrim(address) <> ''),
    ward            text NOT NULL CHECK (btrim(ward) <> ''),
    heading         double precision CHECK (heading >= 0 AND heading < 360),
    fov             double precision NOT NULL CHECK (fov > 0 AND fov <= 360),
    range_m         double precision NOT NULL CHECK (range_m > 0 AND range_m <= 1000),
    mount_height_m  double precision CHECK (mount_height_m BETWEEN 0 AND 100),
    owner_kind      text NOT NULL CHECK (owner_kind IN ('household', 'business', 'boarding_house', 'company', 'public')),
    owner_name      text,
    owner_phone     text,
    schedule        text NOT NULL CHECK (schedule = '24/7'
                        OR (schedule ~ '^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$'
                            AND split_part(schedule, '-', 1) <> split_part(schedule, '-', 2))),
    retention_days  integer NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
    status          text NOT NULL CHECK (status IN ('pending', 'active', 'offline', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    CHECK (updated_at >= created_at)
);

CREATE INDEX cameras_ward_idx ON cameras (ward);
CREATE INDEX cameras_status_idx ON cameras (status);
