-- offkey key store, schema version 3.
-- The sign-in limiter's counters, shared by every process on this store: one row per counted
-- key (an address, an email, both), its state opaque to the store; rows past `expires_at` hold
-- nothing still needed and are swept.
CREATE TABLE sign_in_limits (
    key        TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sign_in_limits_expiry ON sign_in_limits (expires_at);
