-- Grid boundaries are versioned: every change to a grid's boundary, code,
-- name or parent closes its current version and opens the next, so any grid
-- can be seen as it was at any time. Triggers keep the history, whichever
-- path changed the grid (import, redraw, split, merge, OGC API).
CREATE TABLE grid_versions (
    grid_id     bigint NOT NULL, -- no foreign key: history outlives the grid
    version     integer NOT NULL,
    code        text NOT NULL,
    name        text NOT NULL,
    level       text NOT NULL,
    parent_id   bigint,
    geom        geometry(MultiPolygon, 4326) NOT NULL,
    area_m2     double precision NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,
    -- What opened this version: create, import, redraw, move_edge, split, merge.
    change      text NOT NULL,
    changed_by  text NOT NULL DEFAULT '',
    -- What closed it, and who: a later version's change, or delete/merge.
    ended_by    text,
    end_change  text,
    PRIMARY KEY (grid_id, version),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE UNIQUE INDEX grid_versions_current ON grid_versions (grid_id) WHERE valid_to IS NULL;
CREATE INDEX grid_versions_geom ON grid_versions USING gist (geom);

INSERT INTO grid_versions (grid_id, version, code, name, level, parent_id, geom, area_m2, valid_from, change)
    SELECT id, version, code, name, level, parent_id, geom, area_m2, created_at, 'import' FROM grids;

-- A change of boundary, code, name or parent is a new version.
CREATE FUNCTION grids_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.geom IS DISTINCT FROM OLD.geom OR NEW.code IS DISTINCT FROM OLD.code
       OR NEW.name IS DISTINCT FROM OLD.name OR NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER grids_bump_version BEFORE UPDATE ON grids FOR EACH ROW EXECUTE FUNCTION grids_bump_version();

-- The actor and the kind of change come from the transaction's settings
-- gridwatch.actor and gridwatch.change (set_config(..., true)).
CREATE FUNCTION grids_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor text := coalesce(current_setting('gridwatch.actor', true), '');
    kind  text := nullif(current_setting('gridwatch.change', true), '');
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        RETURN NULL; -- nothing versioned changed
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE grid_versions SET valid_to = now(), ended_by = actor,
            end_change = coalesce(kind, lower(TG_OP))
        WHERE grid_id = OLD.id AND valid_to IS NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO grid_versions (grid_id, version, code, name, level, parent_id, geom, area_m2, valid_from, change, changed_by)
        VALUES (NEW.id, NEW.version, NEW.code, NEW.name, NEW.level, NEW.parent_id, NEW.geom, NEW.area_m2, now(),
            coalesce(kind, CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END), actor);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER grids_history AFTER INSERT OR UPDATE OR DELETE ON grids FOR EACH ROW EXECUTE FUNCTION grids_history();

-- Open registered cases whose grid no longer covers them after a redraw
-- keep their grid (statistics count a case where it was registered) and
-- are flagged for re-dispatch.
ALTER TABLE incidents ADD COLUMN needs_redispatch boolean NOT NULL DEFAULT false;
CREATE INDEX incidents_redispatch ON incidents (grid_id) WHERE needs_redispatch;
