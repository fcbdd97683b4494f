-- Bulk ingest has no Idempotency-Key: index only the keys that exist, so a
-- bulk row does not pay for an index entry of a NULL.
ALTER TABLE incidents DROP CONSTRAINT incidents_idempotency_key_key;
CREATE UNIQUE INDEX incidents_idempotency_key ON incidents (idempotency_key) WHERE idempotency_key IS NOT NULL;
