-- Cameras: placed on the map, with a view cone computed on the ground.
CREATE TABLE cameras (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9._-]{1,64}$'),
    name        text NOT NULL CHECK (name <> ''),
    location    geometry(Point, 4326) NOT NULL,
    heading     double precision NOT NULL CHECK (heading >= 0 AND heading < 360),
    fov         double precision NOT NULL CHECK (fov > 0 AND fov <= 360),
    range_m     double precision NOT NULL CHECK (range_m > 0 AND range_m <= 5000),
    cone        geometry(Polygon, 4326) NOT NULL,
    -- Stream URLs with their credentials: never returned, never logged.
    main_url    text NOT NULL,
    sub_url     text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    record      boolean NOT NULL DEFAULT false,
    grid_id     bigint REFERENCES grids (id) ON DELETE SET NULL,
    status      text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'connecting', 'offline')),
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cameras_location ON cameras USING gist (location);
CREATE INDEX cameras_cone ON cameras USING gist (cone);
CREATE INDEX cameras_grid ON cameras (grid_id);

-- Every grid-level grid the view cone sees into.
CREATE TABLE camera_grids (
    camera_id  bigint NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    grid_id    bigint NOT NULL REFERENCES grids (id) ON DELETE CASCADE,
    PRIMARY KEY (camera_id, grid_id)
);
CREATE INDEX camera_grids_grid ON camera_grids (grid_id);
