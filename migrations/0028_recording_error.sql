-- Why a camera that should record does not (issue 14): the recorder of the
-- node that owns the camera writes what went wrong (a file it could not
-- open or write) and clears it once a file is written again. Empty: it
-- records, or it was never tried.
ALTER TABLE cameras
    ADD COLUMN recording_error       text NOT NULL DEFAULT '',
    ADD COLUMN recording_error_since timestamptz;
