-- Patrols (巡查, issue 18): a grid member walks their grids with the phone
-- app, which starts and stops the patrol and samples the position sparingly,
-- sending the points in batches, possibly late after a stretch offline.
-- Package patrol owns these tables.

CREATE TABLE patrols (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id),
    -- The phone's key for its start request: a replay returns this patrol.
    idempotency_key  text CHECK (idempotency_key ~ '^[A-Za-z0-9_-]{8,64}$'),
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz CHECK (ended_at >= started_at),
    -- The length of the track (see patrol_points.segment_m) and its points.
    distance_m       double precision NOT NULL DEFAULT 0 CHECK (distance_m >= 0),
    points           integer NOT NULL DEFAULT 0 CHECK (points >= 0),
    -- The latest point by time, for the map.
    last_point       geometry(Point, 4326),
    last_at          timestamptz,
    last_accuracy_m  double precision,
    last_grid_id     bigint,
    -- Where the distance walk stands: the last point it counted. A batch
    -- of later points continues from here; one reaching back before it
    -- walks the track again from its start.
    walk_point       geometry(Point, 4326),
    walk_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);
-- At most one open patrol per member.
CREATE UNIQUE INDEX patrols_one_open ON patrols (user_id) WHERE ended_at IS NULL;
-- The active patrols (the map's live layer).
CREATE INDEX patrols_active ON patrols (id) WHERE ended_at IS NULL;
-- A member's patrols, by when they started (their day, their last one).
CREATE INDEX patrols_user_started ON patrols (user_id, started_at);
-- The patrols overlapping a period: a day's list, a month's statistics. An
-- open patrol's range is unbounded above. Queries use this very expression.
CREATE INDEX patrols_span ON patrols USING gist (tstzrange(started_at, ended_at, '[]'));

-- The points of a track. The key (patrol, time) makes a replayed batch a
-- no-op. grid_id is the grid covering the point when it was stored, by the
-- placement rule of cases and cameras (geo.GridAt): the track is a record,
-- it does not follow later redraws, and a grid deleted later simply drops
-- out of the joins (no foreign key: a point keeps what it was given).
CREATE TABLE patrol_points (
    patrol_id   bigint NOT NULL REFERENCES patrols (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    geom        geometry(Point, 4326) NOT NULL,
    accuracy_m  double precision CHECK (accuracy_m >= 0),
    grid_id     bigint,
    -- The distance counted for the way from the previous counted point to
    -- this one: 0 for the first, for an inaccurate point and for a GPS
    -- jump. A period's distance is the sum over its points.
    segment_m   double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (patrol_id, at)
);

-- The grids a patrol touched (scope, ?grid=, the list's grids).
CREATE TABLE patrol_grids (
    patrol_id  bigint NOT NULL REFERENCES patrols (id) ON DELETE CASCADE,
    grid_id    bigint NOT NULL REFERENCES grids (id) ON DELETE CASCADE,
    PRIMARY KEY (patrol_id, grid_id)
);
CREATE INDEX patrol_grids_grid ON patrol_grids (grid_id, patrol_id);
