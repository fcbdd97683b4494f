-- Several nodes on one database (package cluster). Every node beats into
-- nodes; a node is alive while its last beat is younger than its lease. The
-- database's clock is the only one that counts: no node compares its own
-- clock with another's.
CREATE TABLE nodes (
    id          text PRIMARY KEY CHECK (id <> '' AND length(id) <= 200),
    -- How other nodes reach it: its HTTP base and its RTSP re-serve ('' when off).
    url         text NOT NULL,
    rtsp_url    text NOT NULL DEFAULT '',
    version     text NOT NULL DEFAULT '',
    -- The process now beating as this node (a restart is a new instance).
    instance    text NOT NULL,
    started_at  timestamptz NOT NULL,
    last_beat   timestamptz NOT NULL,
    lease_ms    integer NOT NULL CHECK (lease_ms > 0),
    -- A draining node takes no camera and hands its own over.
    draining    boolean NOT NULL DEFAULT false,
    max_cameras integer NOT NULL DEFAULT 0 CHECK (max_cameras >= 0),
    -- As of its last beat: cameras it pulls (owns), viewers it serves,
    -- its load (the 1-minute load average per core).
    cameras     integer NOT NULL DEFAULT 0,
    viewers     integer NOT NULL DEFAULT 0,
    load        real NOT NULL DEFAULT 0
);

-- Who pulls each camera: exactly one owner node at a time. A lease is
-- held by a node's process (instance) for as long as that node beats: a
-- node's beat renews all its leases at once, and when its beat lapses (its
-- lease_ms) they lapse with it; the camera_owners view is the leases held
-- now. epoch grows with every change of owner and is never reused; every
-- write that belongs to the owner (recordings, gaps, status, its events)
-- carries the epoch it was given and is refused once it is stale
-- (gridwatch_fence). node_id NULL: released (handed over) at since.
CREATE TABLE camera_leases (
    camera_id bigint PRIMARY KEY REFERENCES cameras (id) ON DELETE CASCADE,
    node_id   text,
    instance  text,
    epoch     bigint NOT NULL CHECK (epoch > 0),
    since     timestamptz NOT NULL,
    CHECK ((node_id IS NULL) = (instance IS NULL))
);
CREATE INDEX camera_leases_node ON camera_leases (node_id) WHERE node_id IS NOT NULL;

CREATE VIEW camera_owners AS
SELECT l.camera_id, l.node_id, l.epoch, l.since, n.url, n.rtsp_url
FROM camera_leases l JOIN nodes n ON n.id = l.node_id AND n.instance = l.instance
WHERE n.last_beat + n.lease_ms * interval '1 millisecond' > now();

-- Cameras someone watches on a node: a camera that records, or that some
-- node has a viewer for, must be pulled by one node. Rows are renewed with
-- the node's beat and lapse with it.
CREATE TABLE camera_demand (
    camera_id bigint NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    node_id   text NOT NULL,
    since     timestamptz NOT NULL DEFAULT now(),
    until     timestamptz NOT NULL,
    PRIMARY KEY (camera_id, node_id)
);

-- Settings every node shares: the cluster secret that intra-cluster
-- requests authenticate with, made once by the first node unless one is
-- configured.
CREATE TABLE cluster_settings (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret text NOT NULL
);

-- gridwatch_fence is true when node holds camera's lease at epoch: no
-- other node has claimed the camera since (a claim is the only way another
-- node takes a camera, and it bumps the epoch); otherwise it raises SQLSTATE
-- GWF01, which ends the caller's statement and transaction: an owner's
-- write is made WHERE gridwatch_fence(…). A node whose beat lapsed while
-- nobody claimed its cameras (a database outage, a long pause) loses
-- nothing it writes once it is back. It locks the lease row FOR SHARE, so a
-- new owner cannot claim the camera while an old owner's write is being made.
CREATE FUNCTION gridwatch_fence(camera bigint, node text, epoch bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM camera_leases l
      WHERE l.camera_id = gridwatch_fence.camera AND l.node_id = gridwatch_fence.node
        AND l.epoch = gridwatch_fence.epoch
      FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node % no longer holds camera %''s lease (epoch %)', node, camera, epoch
            USING ERRCODE = 'GWF01';
    END IF;
    RETURN true;
END $$;

-- The node that wrote a recording (NULL: one node, before several): where
-- its file is while it is on that node's disk.
ALTER TABLE recordings ADD COLUMN node_id text;

-- Footage in an object store: once a closed file is uploaded (its checksum
-- verified), object_key names it there and the node's copy is removed;
-- sha256 is the file's. NULL object_key: the file is on node_id's disk.
ALTER TABLE recordings ADD COLUMN object_key text, ADD COLUMN sha256 bytea;
CREATE INDEX recordings_to_upload ON recordings (node_id) WHERE object_key IS NULL AND NOT open;

-- Exports are made once in the cluster: the node making one holds it until
-- claimed_until (renewed as it works); one whose node died is made again
-- elsewhere. With an object store the finished file is uploaded there
-- (object_key) and any node serves it.
ALTER TABLE exports ADD COLUMN node_id text, ADD COLUMN claimed_until timestamptz, ADD COLUMN object_key text;
