-- Accounts, sessions, API tokens, login throttling and the audit trail.

CREATE TABLE users (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username         text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    display_name     text NOT NULL DEFAULT '',
    role             text NOT NULL CHECK (role IN ('admin', 'commander', 'operator', 'gis_editor', 'grid_leader', 'integration')),
    password_hash    text NOT NULL,
    disabled         boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_login_at    timestamptz
);

-- A user's grid scope: these grids and their descendants. No rows: all grids.
CREATE TABLE user_grids (
    user_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    grid_id  bigint NOT NULL REFERENCES grids (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, grid_id)
);

-- Sessions are found by the SHA-256 of the cookie value; the value itself is never stored.
CREATE TABLE sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash    bytea NOT NULL UNIQUE,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ip            text NOT NULL DEFAULT '',
    user_agent    text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (name <> ''),
    token_hash    bytea NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('admin', 'commander', 'operator', 'gis_editor', 'grid_leader', 'integration')),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE token_grids (
    token_id  bigint NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    grid_id   bigint NOT NULL REFERENCES grids (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, grid_id)
);

-- Failed logins per key ('user:<name>' or 'ip:<address>').
CREATE TABLE login_throttle (
    key           text PRIMARY KEY,
    failures      integer NOT NULL,
    first_at      timestamptz NOT NULL,
    locked_until  timestamptz
);

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_kind   text NOT NULL,
    actor_id     bigint,
    actor_name   text NOT NULL,
    action       text NOT NULL,
    target_type  text NOT NULL DEFAULT '',
    target_id    text NOT NULL DEFAULT '',
    summary      jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id   text NOT NULL DEFAULT '',
    ip           text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id);
CREATE INDEX audit_log_action ON audit_log (action, at DESC);

-- The audit trail is append-only: no update, delete or truncate path exists.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
