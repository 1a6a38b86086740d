-- Server-side sessions. `payload` is the identity sealed with the key ring (AES-256-GCM),
-- so a copy of this file alone reveals no user data.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant       TEXT NOT NULL,
    payload      BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);
