-- Incidents and their candidate cameras.
--
-- An incident is a case id, a kind, a closed time window [time_from, time_to] (equal for an
-- instant) and a WGS84 geometry (WKT, x = longitude, y = latitude: POINT, LINESTRING or
-- POLYGON, validated with GEOS before it is written). The bounding-box columns feed the
-- daemon's in-memory incident index and let SQL filter by area without PostGIS.
CREATE TABLE incidents (
    id             bigserial PRIMARY KEY,
    case_id        text NOT NULL CHECK (btrim(case_id) <> '' AND length(case_id) <= 100),
    kind           text NOT NULL CHECK (btrim(kind) <> '' AND length(kind) <= 100 AND kind = lower(kind)),
    time_from      timestamptz NOT NULL,
    time_to        timestamptz NOT NULL,
    geometry_kind  text NOT NULL CHECK (geometry_kind IN ('point', 'line', 'polygon')),
    geometry_wkt   text NOT NULL CHECK (geometry_wkt ~ '^(POINT|LINESTRING|POLYGON) '),
    min_lat        double precision NOT NULL CHECK (min_lat BETWEEN -90 AND 90),
    min_lon        double precision NOT NULL CHECK (min_lon BETWEEN -180 AND 180),
    max_lat        double precision NOT NULL CHECK (max_lat BETWEEN -90 AND 90),
    max_lon        double precision NOT NULL CHECK (max_lon BETWEEN -180 AND 180),
    radius_m       double precision NOT NULL CHECK (radius_m > 0),
    description    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (time_from <= time_to),
    CHECK (min_lat <= max_lat AND min_lon <= max_lon)
);
CREATE INDEX incidents_case_idx ON incidents (case_id);
CREATE INDEX incidents_time_idx ON incidents (time_from, time_to);

-- The cameras that may have filmed an incident, as judged when it was recorded: the distance
-- from the camera to the geometry, whether its field of view covers it, and the footage state
-- for the incident window at that moment (available / expired / not_recording / unknown) with
-- the time deletion of that footage starts. Written in the same transaction as the incident.
CREATE TABLE incident_cameras (
    incident_id  bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    camera_id    text NOT NULL REFERENCES cameras (id),
    distance_m   double precision NOT NULL CHECK (distance_m >= 0),
    sees         boolean NOT NULL,
    footage      text NOT NULL CHECK (footage IN ('available', 'expired', 'not_recording', 'unknown')),
    expires_at   timestamptz,
    PRIMARY KEY (incident_id, camera_id)
);
CREATE INDEX incident_cameras_camera_idx ON incident_cameras (camera_id, incident_id);
