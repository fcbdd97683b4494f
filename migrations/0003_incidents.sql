-- Incidents: the GB/T 30428 case workflow, with grid staff (1+X+Y) and categories.

CREATE TABLE incident_categories (
    code            text PRIMARY KEY CHECK (code ~ '^[0-9]{2}([0-9]{2})?$'),
    name            text NOT NULL,
    parent_code     text REFERENCES incident_categories (code),
    -- Hours from report to the deadline (subclasses; a class gives its default).
    deadline_hours  integer NOT NULL CHECK (deadline_hours > 0)
);

INSERT INTO incident_categories (code, name, parent_code, deadline_hours) VALUES
    ('01', '市容环境', NULL, 24),
    ('0101', '暴露垃圾', '01', 24), ('0102', '积存垃圾渣土', '01', 24), ('0103', '道路不洁', '01', 12), ('0104', '乱涂乱画', '01', 48),
    ('02', '宣传广告', NULL, 48),
    ('0201', '非法小广告', '02', 24), ('0202', '违规户外广告', '02', 72), ('0203', '占道广告牌', '02', 48),
    ('03', '施工管理', NULL, 24),
    ('0301', '施工扰民', '03', 4), ('0302', '施工占道', '03', 24), ('0303', '道路挖掘破损', '03', 72),
    ('04', '突发事件', NULL, 2),
    ('0401', '路面塌陷', '04', 2), ('0402', '井盖缺失', '04', 2), ('0403', '火情', '04', 1), ('0404', '道路积水', '04', 4),
    ('05', '街面秩序', NULL, 12),
    ('0501', '店外经营', '05', 12), ('0502', '占道经营', '05', 4), ('0503', '无照游商', '05', 4), ('0504', '乱停乱放', '05', 4),
    ('06', '其他', NULL, 72),
    ('0601', '其他事件', '06', 72);

-- The 1+X+Y team of a grid: 1 leader, X volunteers, Y station and department staff.
CREATE TABLE grid_staff (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    grid_id       bigint NOT NULL REFERENCES grids (id) ON DELETE CASCADE,
    role          text NOT NULL CHECK (role IN ('leader', 'volunteer', 'staff')),
    name          text NOT NULL CHECK (name <> ''),
    phone         text NOT NULL DEFAULT '',
    organisation  text NOT NULL DEFAULT '',
    user_id       bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grid_staff_grid ON grid_staff (grid_id, role);
CREATE UNIQUE INDEX grid_staff_one_leader ON grid_staff (grid_id) WHERE role = 'leader';

CREATE TABLE incidents (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text NOT NULL CHECK (source IN ('patrol', 'hotline', 'citizen', 'camera', 'sensor', 'superior')),
    external_id      text,
    idempotency_key  text UNIQUE,
    category         text NOT NULL REFERENCES incident_categories (code),
    title            text NOT NULL CHECK (title <> ''),
    description      text NOT NULL DEFAULT '',
    location         geometry(Point, 4326) NOT NULL,
    address          text NOT NULL DEFAULT '',
    reported_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    priority         text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    grid_id          bigint REFERENCES grids (id) ON DELETE SET NULL,
    assignee_id      bigint REFERENCES grid_staff (id) ON DELETE SET NULL,
    deadline         timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'reported',
    version          integer NOT NULL DEFAULT 1,
    registered_at    timestamptz,
    closed_at        timestamptz,
    created_by       text NOT NULL DEFAULT '',
    created_by_token bigint,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, external_id)
);
CREATE INDEX incidents_location ON incidents USING gist (location);
CREATE INDEX incidents_grid_status ON incidents (grid_id, status);
CREATE INDEX incidents_open_deadline ON incidents (deadline) WHERE status NOT IN ('closed', 'rejected');
CREATE INDEX incidents_reported_at ON incidents (reported_at);

-- Every transition, with who, when and why (the report itself is the incident row).
CREATE TABLE incident_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    from_status  text,
    to_status    text NOT NULL,
    note         text NOT NULL DEFAULT '',
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);
