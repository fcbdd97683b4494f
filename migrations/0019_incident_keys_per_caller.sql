-- Duplicate-detection keys belong to the caller who sent them: an
-- Idempotency-Key or a (source, external_id) one caller used first must not
-- block another caller's real report. reporter_key names the caller
-- ('user:<id>' or 'token:<id>'); request_hash is the SHA-256 of the
-- canonical request an Idempotency-Key was first sent with, so the same key
-- with another body is refused instead of answered with the first case.
ALTER TABLE incidents ADD COLUMN reporter_key text NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN request_hash text;

UPDATE incidents i SET reporter_key = CASE
    WHEN i.created_by_token IS NOT NULL THEN 'token:' || i.created_by_token
    ELSE coalesce((SELECT 'user:' || u.id FROM users u WHERE u.username = i.created_by), 'name:' || i.created_by)
END;

ALTER TABLE incidents DROP CONSTRAINT incidents_source_external_id_key;
DROP INDEX incidents_idempotency_key;
CREATE UNIQUE INDEX incidents_external_id ON incidents (source, reporter_key, external_id) WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX incidents_idempotency_key ON incidents (reporter_key, idempotency_key) WHERE idempotency_key IS NOT NULL;
