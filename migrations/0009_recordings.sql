-- The footage index: one row per recorded file (fMP4 on local disk under
-- <data-dir>/recordings), its time range and its fragments, and the gaps
-- where a recording camera recorded nothing.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE recordings (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    camera_id  bigint NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    span       tstzrange NOT NULL CHECK (NOT isempty(span)),
    -- Relative to the recordings directory.
    path       text NOT NULL UNIQUE,
    bytes      bigint NOT NULL CHECK (bytes > 0),
    codec      text NOT NULL,
    width      integer NOT NULL,
    height     integer NOT NULL,
    -- Size of the initialisation segment at the start of the file.
    init_size  integer NOT NULL,
    -- Each fragment (moof+mdat, starting at a keyframe):
    -- [byte offset, byte size, start in ms from the span's start, duration in ms].
    fragments  jsonb NOT NULL,
    status     text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'missing')),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Overlap queries by camera and time: "what is there between from and to".
CREATE INDEX recordings_camera_span ON recordings USING gist (camera_id, span);

CREATE TABLE recording_gaps (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    camera_id  bigint NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    span       tstzrange NOT NULL CHECK (NOT isempty(span)),
    reason     text NOT NULL
);
CREATE INDEX recording_gaps_camera_span ON recording_gaps USING gist (camera_id, span);
