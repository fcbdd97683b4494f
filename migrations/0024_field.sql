-- Field teams on their phones (issue 18): long-lived device sessions,
-- transitions and uploads that a phone can replay after a poor signal, and
-- where a field report was made from.

-- A device session (sign-in from the field app, "this phone") lives longer
-- than a dashboard shift; an admin sees and revokes it by its device name.
ALTER TABLE sessions ADD COLUMN device text NOT NULL DEFAULT '';

-- A transition sent with an Idempotency-Key is applied once per caller:
-- the phone's queue may send it again after a lost answer.
ALTER TABLE incident_events ADD COLUMN caller_key text;
ALTER TABLE incident_events ADD COLUMN idempotency_key text;
ALTER TABLE incident_events ADD COLUMN request_hash text;
CREATE UNIQUE INDEX incident_events_idempotency ON incident_events (incident_id, caller_key, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Where a report came through (the field app) and how sure the phone was
-- of its position.
ALTER TABLE incidents ADD COLUMN via text NOT NULL DEFAULT '' CHECK (via IN ('', 'field'));
ALTER TABLE incidents ADD COLUMN accuracy_m real CHECK (accuracy_m IS NULL OR accuracy_m >= 0);

-- Photos and voice notes.
ALTER TABLE incident_attachments ADD COLUMN kind text NOT NULL DEFAULT 'photo' CHECK (kind IN ('photo', 'voice'));

-- Resumable uploads: the chunks received so far live in the database (any
-- node takes the next chunk; a crash loses nothing acknowledged) until the
-- last one lands and the attachment is stored.
CREATE TABLE attachment_uploads (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id    bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    caller_key     text NOT NULL,
    upload_key     text NOT NULL,
    filename       text NOT NULL,
    total          bigint NOT NULL CHECK (total > 0),
    received       bigint NOT NULL DEFAULT 0,
    attachment_id  bigint REFERENCES incident_attachments (id) ON DELETE CASCADE,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, caller_key, upload_key)
);
CREATE INDEX attachment_uploads_stale ON attachment_uploads (updated_at) WHERE attachment_id IS NULL;

CREATE TABLE attachment_upload_chunks (
    upload_id  bigint NOT NULL REFERENCES attachment_uploads (id) ON DELETE CASCADE,
    at         bigint NOT NULL,
    data       bytea NOT NULL,
    PRIMARY KEY (upload_id, at)
);
