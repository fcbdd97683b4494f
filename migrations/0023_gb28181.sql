-- GB/T 28181 devices (cameras, NVRs, lower platforms) that register with
-- gridwatch over SIP, and the video channels their catalogs list.
--
-- A device's password, when it has its own, is kept apart like the
-- cameras' credentials: never returned, never logged.
CREATE TABLE gb_devices (
    id             text PRIMARY KEY CHECK (id ~ '^[0-9]{20}$'),
    name           text NOT NULL DEFAULT '',
    manufacturer   text NOT NULL DEFAULT '',
    model          text NOT NULL DEFAULT '',
    firmware       text NOT NULL DEFAULT '',
    password       text NOT NULL DEFAULT '',
    -- The datum of the positions its catalog reports (most report WGS-84;
    -- some platforms GCJ-02 or BD-09): converted to WGS-84 on the way in.
    crs            text NOT NULL DEFAULT 'wgs84' CHECK (crs IN ('wgs84', 'gcj02', 'bd09')),
    -- Where it registered from and over what, and with which node.
    transport      text NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp')),
    address        text NOT NULL DEFAULT '',
    node_id        text,
    online         boolean NOT NULL DEFAULT false,
    offline_reason text NOT NULL DEFAULT '',
    registered_at  timestamptz,
    expires_at     timestamptz,
    last_keepalive timestamptz,
    catalog_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A device's video channels as its catalog last said. A channel with a
-- position is a camera on the map (camera_id); one without stays here,
-- unplaced, until someone places it. A channel the catalog no longer lists
-- is marked gone, never deleted: its camera and its footage stay.
CREATE TABLE gb_channels (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9]{20}$'),
    device_id    text NOT NULL REFERENCES gb_devices (id) ON DELETE CASCADE,
    camera_id    bigint UNIQUE REFERENCES cameras (id) ON DELETE SET NULL,
    name         text NOT NULL DEFAULT '',
    manufacturer text NOT NULL DEFAULT '',
    model        text NOT NULL DEFAULT '',
    civil_code   text NOT NULL DEFAULT '',
    parent_id    text NOT NULL DEFAULT '',
    address      text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT '',
    ptz_type     integer NOT NULL DEFAULT 0,
    -- The position as reported, in WGS-84 (converted when the device said
    -- GCJ-02); NULL when it reported none.
    lon          double precision,
    lat          double precision,
    gone         boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gb_channels_device ON gb_channels (device_id);

-- Alarms a device raised, and the incident each became (one per alarm).
CREATE TABLE gb_alarms (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   text NOT NULL,
    channel_id  text NOT NULL,
    alarm_time  timestamptz NOT NULL,
    priority    integer NOT NULL DEFAULT 0,
    method      integer NOT NULL DEFAULT 0,
    alarm_type  integer NOT NULL DEFAULT 0,
    description text NOT NULL DEFAULT '',
    incident_id bigint REFERENCES incidents (id) ON DELETE SET NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel_id, alarm_time, method, alarm_type)
);

-- Cameras only one node can pull: a GB/T 28181 channel is pulled by the
-- node its device registered with (the device sends its media where that
-- node's INVITE says). The cluster gives such a camera to that node.
-- (A registration that expired, or whose node stopped beating, pins
-- nothing: the device will register again somewhere.)
CREATE VIEW camera_pins AS
    SELECT c.camera_id, d.node_id
    FROM gb_channels c JOIN gb_devices d ON d.id = c.device_id
    JOIN nodes n ON n.id = d.node_id
    WHERE c.camera_id IS NOT NULL AND d.online AND d.expires_at > now()
      AND n.last_beat + n.lease_ms * interval '1 millisecond' > now();
