-- Coverage-gap analysis (issue 4): reference layers and the results of coverage runs.
--
-- Geometries are WKT in WGS84 (x = longitude, y = latitude), as for incidents: the daemon does
-- the geometry with GEOS and the schema needs no PostGIS.

-- Ward polygons (imported GeoJSON, or the demo's generated cells).
CREATE TABLE wards (
    name          text PRIMARY KEY CHECK (btrim(name) <> '' AND length(name) <= 200),
    geometry_wkt  text NOT NULL CHECK (geometry_wkt ~ '^(POLYGON|MULTIPOLYGON)'),
    source        text NOT NULL CHECK (btrim(source) <> ''),
    position      integer NOT NULL,
    imported_at   timestamptz NOT NULL DEFAULT now()
);

-- The street network: one row per polyline. Intersections are derived from it, never stored.
CREATE TABLE streets (
    id            bigserial PRIMARY KEY,
    name          text CHECK (name IS NULL OR length(name) <= 200),
    kind          text NOT NULL CHECK (kind IN ('arterial', 'street', 'alley')),
    geometry_wkt  text NOT NULL CHECK (geometry_wkt ~ '^LINESTRING'),
    source        text NOT NULL CHECK (btrim(source) <> ''),
    imported_at   timestamptz NOT NULL DEFAULT now()
);

-- One coverage run. `running` rows left by a daemon that stopped are marked `failed` at
-- start-up; ward rows and the town totals are written in the same transaction as `complete`,
-- so a cancelled or failed run never has results that look complete.
CREATE TABLE coverage_runs (
    id            bigserial PRIMARY KEY,
    status        text NOT NULL CHECK (status IN ('running', 'complete', 'cancelled', 'failed')),
    parameters    text NOT NULL,             -- JSON object of the request's options
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    error         text,
    summary       text,                      -- JSON: town totals and suggestions (complete runs)
    stretches     text,                      -- uncovered stretches, best first: one JSON object a line
    suggestions_geojson text,                -- GeoJSON features of the suggestions
    CHECK ((status = 'running') = (finished_at IS NULL)),
    CHECK ((status = 'complete') = (summary IS NOT NULL))
);

-- Per-ward figures of a complete run.
CREATE TABLE coverage_ward_results (
    run_id                bigint NOT NULL REFERENCES coverage_runs (id) ON DELETE CASCADE,
    ward                  text NOT NULL,
    position              integer NOT NULL,
    cameras               integer NOT NULL CHECK (cameras >= 0),
    street_m              double precision NOT NULL CHECK (street_m >= 0),
    covered_m             double precision NOT NULL CHECK (covered_m >= 0),
    area_m2               double precision NOT NULL CHECK (area_m2 >= 0),
    covered_area_m2       double precision NOT NULL CHECK (covered_area_m2 >= 0),
    intersections         integer NOT NULL CHECK (intersections >= 0),
    intersections_unseen  integer NOT NULL CHECK (intersections_unseen >= 0),
    intersections_single  integer NOT NULL CHECK (intersections_single >= 0),
    intersections_multi   integer NOT NULL CHECK (intersections_multi >= 0),
    incidents             integer NOT NULL CHECK (incidents >= 0),
    incidents_unseen      integer NOT NULL CHECK (incidents_unseen >= 0),
    gap_score             double precision NOT NULL CHECK (gap_score >= 0),
    map_geojson           text,              -- GeoJSON features (comma-separated) for maps
    PRIMARY KEY (run_id, ward),
    CHECK (intersections = intersections_unseen + intersections_single + intersections_multi)
);
