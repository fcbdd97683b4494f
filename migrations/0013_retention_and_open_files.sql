-- Per-camera retention: NULL follows the service's --recording-max-age.
ALTER TABLE cameras ADD COLUMN retention_days integer
    CHECK (retention_days BETWEEN 1 AND 3650);

-- A recording file is indexed from its first fragment on and its row grows
-- with each fragment written, so the last minute plays back before the file
-- closes. open marks the file still being written: retention never removes
-- it, and a start after a crash checks it against the disk.
ALTER TABLE recordings ADD COLUMN open boolean NOT NULL DEFAULT false;
