-- Operators' tags on footage: a camera, a time range, a label and a note.
CREATE TABLE footage_tags (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    camera_id  bigint NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    span       tstzrange NOT NULL CHECK (NOT isempty(span)),
    label      text NOT NULL CHECK (label <> '' AND length(label) <= 64),
    note       text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    author     text NOT NULL,
    -- Who may edit it: "user:<id>" or "token:<id>" (names can repeat).
    author_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX footage_tags_camera_span ON footage_tags USING gist (camera_id, span);
CREATE INDEX footage_tags_label ON footage_tags (label);
