-- grid_subtree is the one home of "these grids and all their descendants",
-- the walk down grids.parent_id that scopes lists, tiles, statistics and
-- report checks. It is LANGUAGE sql, STABLE and not STRICT so the planner
-- can inline it where it is used in FROM (`x IN (SELECT * FROM
-- grid_subtree($1))`): the recursive query is then planned in place, with
-- grids_parent_id and the real row estimates, as when it was written out.
-- roots is an array of grid ids; unknown ids and NULL add nothing.
CREATE FUNCTION grid_subtree(roots bigint[]) RETURNS SETOF bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH RECURSIVE sub AS (
        SELECT id FROM grids WHERE id = ANY(roots)
        UNION
        SELECT c.id FROM grids c JOIN sub ON c.parent_id = sub.id
    ) SELECT id FROM sub
$$;
