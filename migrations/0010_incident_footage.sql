-- Footage linked to incidents: a camera and a time window. Linked footage is
-- on evidence hold: retention never removes a recording it overlaps.
CREATE TABLE incident_footage (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    camera_id   bigint NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    span        tstzrange NOT NULL CHECK (NOT isempty(span)),
    -- auto: linked when the incident was filed (the camera sees the spot,
    -- or is near it in the same grid); manual: by an operator.
    source      text NOT NULL CHECK (source IN ('auto', 'manual')),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, camera_id, span)
);
CREATE INDEX incident_footage_incident ON incident_footage (incident_id);
CREATE INDEX incident_footage_hold ON incident_footage USING gist (camera_id, span);
