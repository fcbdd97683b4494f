-- Viewing sessions: who watched which camera, live or recorded, how, from
-- where, and when (等保 2.0 asks who saw what). A row is written when a
-- session starts (ended_at NULL) and completed once when it ends; the end
-- may also arrive alone (the start was lost to a full queue). The table is
-- append-only apart from that one completion: no delete, no truncate, and an
-- ended session never changes again.
CREATE TABLE viewing_sessions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- session is chosen by the server when the viewing starts, so the start
    -- and the end rows of a batch find each other without a round trip.
    session     uuid NOT NULL UNIQUE,
    actor_kind  text NOT NULL,
    actor_id    bigint,
    actor_name  text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('live', 'playback')),
    -- protocol is open: mse, hls, rtsp, mp4 today; webrtc later.
    protocol    text NOT NULL CHECK (protocol ~ '^[a-z0-9][a-z0-9._-]{0,31}$'),
    -- No foreign key: a camera removed later keeps who watched it.
    camera_id   bigint NOT NULL,
    stream      text NOT NULL DEFAULT '',
    range_from  timestamptz,
    range_to    timestamptz,
    ip          text NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    bytes       bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    CHECK (ended_at IS NULL OR ended_at >= started_at),
    CHECK ((range_from IS NULL) = (range_to IS NULL))
);
CREATE INDEX viewing_sessions_camera ON viewing_sessions (camera_id, id DESC);
CREATE INDEX viewing_sessions_actor ON viewing_sessions (actor_name, id DESC);
CREATE INDEX viewing_sessions_started ON viewing_sessions (started_at DESC);

-- Only the end of an open session may be written: ended_at, the bytes sent
-- and the footage range it covered (an HTTP playback session learns its
-- range as it goes). Who, what, how, from where and since when never change.
CREATE FUNCTION viewing_sessions_end_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'viewing_sessions is append-only';
    END IF;
    IF OLD.ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'viewing session % has ended and cannot change', OLD.id;
    END IF;
    IF NEW.ended_at IS NULL
       OR (NEW.id, NEW.session, NEW.actor_kind, NEW.actor_id, NEW.actor_name, NEW.kind, NEW.protocol,
           NEW.camera_id, NEW.stream, NEW.ip, NEW.started_at)
          IS DISTINCT FROM
          (OLD.id, OLD.session, OLD.actor_kind, OLD.actor_id, OLD.actor_name, OLD.kind, OLD.protocol,
           OLD.camera_id, OLD.stream, OLD.ip, OLD.started_at) THEN
        RAISE EXCEPTION 'only the end of a viewing session may be written';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER viewing_sessions_end_only BEFORE UPDATE OR DELETE ON viewing_sessions
    FOR EACH ROW EXECUTE FUNCTION viewing_sessions_end_only();
CREATE TRIGGER viewing_sessions_no_truncate BEFORE TRUNCATE ON viewing_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION viewing_sessions_end_only();
