-- Where a camera's stream stands, as its puller last saw it: why it is
-- offline and since when. The status itself is in cameras.status.
ALTER TABLE cameras
    ADD COLUMN status_reason text NOT NULL DEFAULT '',
    ADD COLUMN status_since  timestamptz;
