-- Grids: the hierarchy district → street → community → grid, with boundaries.
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE grids (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL CHECK (name <> ''),
    level       text NOT NULL CHECK (level IN ('district', 'street', 'community', 'grid')),
    -- 1 district … 4 grid: the most specific grid covering a point has the highest rank.
    level_rank  smallint GENERATED ALWAYS AS (CASE level
                    WHEN 'district' THEN 1 WHEN 'street' THEN 2 WHEN 'community' THEN 3 ELSE 4 END) STORED,
    parent_id   bigint REFERENCES grids (id) ON DELETE RESTRICT,
    geom        geometry(MultiPolygon, 4326) NOT NULL,
    area_m2     double precision NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The national pattern: 6-digit district + 3 digits per level below.
    CONSTRAINT grids_code_pattern CHECK (
        code ~ '^[0-9]+$' AND length(code) = 3 + 3 * CASE level
            WHEN 'district' THEN 1 WHEN 'street' THEN 2 WHEN 'community' THEN 3 ELSE 4 END),
    CONSTRAINT grids_district_root CHECK ((level = 'district') = (parent_id IS NULL)),
    CONSTRAINT grids_geom_valid CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom))
);

CREATE INDEX grids_geom_gist ON grids USING gist (geom);
CREATE INDEX grids_parent_id ON grids (parent_id);
CREATE INDEX grids_level_code ON grids (level_rank, code);

-- Bumped by every change to grids; tiles and the in-process index key on it.
CREATE TABLE grid_revision (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision   bigint NOT NULL
);
INSERT INTO grid_revision (revision) VALUES (1);
