-- Cameras managed over ONVIF: the device service's address (shown), the
-- account it is signed into with (kept apart, never returned or logged, as
-- the stream URLs' credentials are), the media profile PTZ commands name,
-- and what the device said of itself at its last check (maker, model,
-- firmware, serial, clock offset, profiles, PTZ; NULL: never checked).
ALTER TABLE cameras ADD COLUMN IF NOT EXISTS onvif_url text NOT NULL DEFAULT '',
                    ADD COLUMN IF NOT EXISTS onvif_secret jsonb NOT NULL DEFAULT '{}',
                    ADD COLUMN IF NOT EXISTS onvif_profile text NOT NULL DEFAULT '',
                    ADD COLUMN IF NOT EXISTS onvif_device jsonb;

-- Who steers a PTZ camera: one actor at a time, until a while after their
-- last command (or until they let go). Kept in the database so that every
-- node sees the same holder. last_command is the last command audited for
-- the holder: the repeats a held button sends are not audited again.
CREATE TABLE camera_ptz_control (
    camera_id    bigint PRIMARY KEY REFERENCES cameras (id) ON DELETE CASCADE,
    actor_kind   text NOT NULL,
    actor_id     bigint NOT NULL,
    actor_name   text NOT NULL,
    since        timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    last_command jsonb NOT NULL DEFAULT '{}'
);
