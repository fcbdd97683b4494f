-- Photos attached to incidents; the files live under <data-dir>/attachments.
CREATE TABLE incident_attachments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    bytes         bigint NOT NULL,
    sha256        text NOT NULL,
    path          text NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_attachments_incident ON incident_attachments (incident_id);
