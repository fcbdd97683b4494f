-- Evidence exports: one MP4 per request (recorded fragments, no
-- re-encoding), made in the background, with a manifest and its SHA-256.
CREATE TABLE exports (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    camera_id    bigint NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    span         tstzrange NOT NULL CHECK (NOT isempty(span)),
    incident_id  bigint REFERENCES incidents (id) ON DELETE SET NULL,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress     real NOT NULL DEFAULT 0,
    sha256       text,
    bytes        bigint,
    error        text,
    manifest     jsonb,
    requested_by text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX exports_queued ON exports (id) WHERE status IN ('queued', 'running');
