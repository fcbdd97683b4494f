-- Export limits: an admin may hold an export against retention, and the
-- queue knows how many bytes each export will write (the free-space check
-- counts what is already promised). Identical requests are found by camera
-- and range (requests are serialised by an advisory lock, not a unique
-- index, so exports made twice before this migration stay as they are).
ALTER TABLE exports
    ADD COLUMN held_by         text,
    ADD COLUMN held_at         timestamptz,
    ADD COLUMN estimated_bytes bigint NOT NULL DEFAULT 0;
CREATE INDEX exports_camera_span ON exports USING gist (camera_id, span);
-- Per-user limits count what each user has waiting or running.
CREATE INDEX exports_pending_by ON exports (requested_by) WHERE status IN ('queued', 'running');
-- Retention walks exports by age.
CREATE INDEX exports_created ON exports (created_at);
