-- offkey key store, schema version 1 (PRAGMA user_version = 1).
-- No plaintext key or session token is ever stored: keys by sha256 + last 4, sessions by sha256.
-- Times are Unix milliseconds (UTC).

CREATE TABLE members (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL COLLATE NOCASE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    -- removed members stay as rows so that keys they created still name them
    removed_at    INTEGER
);
CREATE UNIQUE INDEX members_active_email ON members (email) WHERE removed_at IS NULL;

CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY,
    member_id    TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_member ON sessions (member_id);

CREATE TABLE keys (
    id           TEXT PRIMARY KEY,
    sha256       TEXT NOT NULL UNIQUE,
    last4        TEXT NOT NULL,
    memo         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('current', 'legacy')),
    created_at   INTEGER NOT NULL,
    created_by   TEXT REFERENCES members (id),
    last_used_at INTEGER,
    -- a deleted key's row stays as a tombstone so that a lookup can answer "revoked"
    deleted_at   INTEGER,
    -- rotation: the key this one replaced ...
    replaces     TEXT REFERENCES keys (id),
    -- ... and, on the replaced key, when it stops working
    expires_at   INTEGER,
    -- on the new key: retire the replaced key at this key's first use
    retire_replaced_on_first_use INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX keys_created ON keys (created_at);

CREATE TABLE exposures (
    key_id      TEXT NOT NULL REFERENCES keys (id),
    location    TEXT NOT NULL,
    source      TEXT NOT NULL,
    seen_at     INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, location)
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT,
    action  TEXT NOT NULL,
    key_id  TEXT,
    detail  TEXT
);
