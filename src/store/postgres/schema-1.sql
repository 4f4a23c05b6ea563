-- offkey key store on PostgreSQL, schema version 1 (the SQLite store's version 2, same columns).
-- No plaintext key or session token is ever stored: keys by sha256 + last 4, sessions by sha256.
-- Times are Unix milliseconds (UTC), as in the SQLite store, so a copy between them is exact.

CREATE TABLE members (
    seq           BIGSERIAL UNIQUE,
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    -- removed members stay as rows so that keys they created still name them
    removed_at    BIGINT
);
-- One active member per email, case-insensitively: the arbiter of concurrent `members add`.
CREATE UNIQUE INDEX members_active_email ON members (lower(email)) WHERE removed_at IS NULL;

CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY,
    member_id    TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_member ON sessions (member_id);

CREATE TABLE keys (
    seq          BIGSERIAL UNIQUE,
    id           TEXT PRIMARY KEY,
    sha256       TEXT NOT NULL UNIQUE,
    last4        TEXT NOT NULL,
    memo         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('current', 'legacy')),
    created_at   BIGINT NOT NULL,
    created_by   TEXT REFERENCES members (id),
    last_used_at BIGINT,
    -- a deleted key's row stays as a tombstone so that a lookup can answer "revoked"
    deleted_at   BIGINT,
    -- rotation: the key this one replaced ...
    replaces     TEXT REFERENCES keys (id),
    -- ... and, on the replaced key, when it stops working
    expires_at   BIGINT,
    -- on the new key: retire the replaced key at this key's first use
    retire_replaced_on_first_use BOOLEAN NOT NULL DEFAULT FALSE,
    -- on the new key: the deadline its rotation asked for the key it replaces
    rotation_deadline BIGINT
);
CREATE INDEX keys_created ON keys (created_at);
CREATE INDEX keys_replaces ON keys (replaces);

CREATE TABLE exposures (
    key_id      TEXT NOT NULL REFERENCES keys (id),
    location    TEXT NOT NULL,
    source      TEXT NOT NULL,
    seen_at     BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, location)
);
CREATE INDEX exposures_latest ON exposures (key_id, seen_at DESC);

CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT,
    action  TEXT NOT NULL,
    key_id  TEXT,
    detail  TEXT
);
