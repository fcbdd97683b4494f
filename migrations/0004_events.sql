-- The change feed behind live updates: each change writes an event in its
-- own transaction; a trigger notifies every listening gridwatch process of
-- the new id, and SSE clients reconnecting with Last-Event-ID replay from here.
CREATE TABLE events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    type     text NOT NULL,
    -- The grid the event concerns (scoped viewers see only theirs); NULL: not grid-bound.
    grid_id  bigint,
    data     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX events_at ON events (at);

CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridwatch_events', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_notify();
