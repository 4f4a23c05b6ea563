-- offkey key store, schema version 2.
-- On a replacement key: the deadline its rotation asked for the key it replaces, so that
-- cancelling another rotation of that key never pushes this deadline back.
ALTER TABLE keys ADD COLUMN rotation_deadline INTEGER;
CREATE INDEX keys_replaces ON keys (replaces);
-- Sessions end after a while without use: when each was last used (coalesced to a minute).
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
UPDATE sessions SET last_seen_at = created_at;
